"""The mistakes stage's tables: the library's mistake, criticism and adversarial functions applied to a
zoo's artifacts, as long-format polars frames (one file each under ``artifacts/mistakes/``).

Every function reads one model's arrays at a time (memory-mapped), so no N x N sample matrix and no
all-models logits tensor is held.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl
import torch

from .adversarial import Classifier, attack, matrix_correlation, predict, robust_accuracy, transfer_matrix
from .config import MistakesSettings
from .critic import mmd_critic, prototype_overlap
from .explain import nearest_training
from .mistakes import confusion_pairs, consensus_errors, mistake_counts, neighbour_disagreement
from .zooartifacts import Predictions

__all__ = ["taxonomy_tables", "consensus_table", "neighbour_table", "critic_tables", "robustness_table",
           "transfer_table", "adversarial_examples", "kappa_matrix"]


def taxonomy_tables(predictions_dir: str | Path, ids: list[str], *, num_classes: int,
                    top_confusions: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per model: (taxonomy rows {model, n, correct, near_miss, far_miss}, confusion rows
    {model, rank, true, pred, count})."""
    tax, conf = [], []
    for mid in ids:
        frame = pl.read_parquet(Path(predictions_dir) / mid / "eval.parquet", columns=["label", "top5"])
        labels, top = frame["label"].to_numpy(), np.stack(frame["top5"].to_numpy())
        tax.append({"model": mid, **mistake_counts(labels, top)})
        for rank, (t, p, c) in enumerate(confusion_pairs(labels, top[:, 0], num_classes=num_classes,
                                                         top=top_confusions).tolist()):
            conf.append({"model": mid, "rank": rank + 1, "true": t, "pred": p, "count": c})
    schema = {"model": pl.String, "rank": pl.Int64, "true": pl.Int64, "pred": pl.Int64, "count": pl.Int64}
    return pl.DataFrame(tax), pl.DataFrame(conf, schema=schema)


def _explanations(train_emb: np.ndarray, queries: np.ndarray, train_ids: np.ndarray, train_labels: np.ndarray,
                  *, k: int) -> tuple[list[list[int]], list[list[int]], list[list[float]]]:
    if len(queries) == 0:
        return [], [], []
    sim, pos = nearest_training(train_emb, queries, k=k)
    return train_ids[pos].tolist(), train_labels[pos].tolist(), sim.tolist()


def consensus_table(preds: Predictions, *, num_classes: int, min_share: float, explain: dict, k: int,
                    show: int) -> pl.DataFrame:
    """Consensus errors, ranked: {rank, sample_id, label, consensus_pred, share, confidence, votes (every
    model's prediction, study order), neighbour_ids / neighbour_labels / neighbour_sim (the ``k`` nearest
    training samples in the strongest model's embedding; for the first ``show`` rows, empty after)}.

    ``explain`` holds the strongest model's ``train`` [n_train, d] and ``eval`` [n, d] embeddings and the
    training split's ``train_ids`` and ``train_labels``.
    """
    mean_probs = sum(np.load(p, mmap_mode="r").astype(np.float64) for p in preds.probs) / len(preds.probs)
    got = consensus_errors(preds.pred, preds.labels, num_classes=num_classes, min_share=min_share,
                           mean_probs=mean_probs)
    head = got.positions[:show]
    ids, labels, sims = _explanations(explain["train"], np.asarray(explain["eval"][head]), explain["train_ids"],
                                      explain["train_labels"], k=k)
    pad = len(got.positions) - len(head)
    return pl.DataFrame({
        "rank": np.arange(1, len(got.positions) + 1), "sample_id": preds.sample_ids[got.positions],
        "label": preds.labels[got.positions], "consensus_pred": got.wrong_class, "share": got.share,
        "confidence": got.confidence, "votes": preds.pred[:, got.positions].T.tolist(),
        "neighbour_ids": ids + [[]] * pad, "neighbour_labels": labels + [[]] * pad, "neighbour_sim": sims + [[]] * pad,
    }, schema_overrides={"votes": pl.List(pl.Int64), "neighbour_ids": pl.List(pl.Int64),
                         "neighbour_labels": pl.List(pl.Int64), "neighbour_sim": pl.List(pl.Float64)})


def neighbour_table(embeddings: np.ndarray, labels: np.ndarray, sample_ids: np.ndarray, *, k: int, num_classes: int,
                    model: str) -> pl.DataFrame:
    """Neighbour disagreement in one model's eval embedding, ranked: {rank, sample_id, label, majority,
    majority_share, other_share, model}."""
    got = neighbour_disagreement(embeddings, labels, k=k, num_classes=num_classes)
    return pl.DataFrame({
        "rank": np.arange(1, len(got.positions) + 1), "sample_id": sample_ids[got.positions],
        "label": labels[got.positions], "majority": got.majority, "majority_share": got.majority_share,
        "other_share": got.other_share, "model": [model] * len(got.positions)}, schema_overrides={"model": pl.String})


def critic_tables(embeddings_dir: str | Path, ids: list[str], labels: np.ndarray, sample_ids: np.ndarray, *,
                  num_classes: int, settings: MistakesSettings, device: str | torch.device = "cpu"
                  ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """MMD-critic (on ``device``) on each model's eval embedding, per class: (picks {model, class, kind
    ('prototype' | 'criticism'), rank, sample_id, witness}, overlap {class, model_a, model_b, overlap}: the
    Jaccard overlap of two models' prototypes)."""
    rows: list[dict] = []
    protos: dict[int, dict[str, np.ndarray]] = {c: {} for c in range(num_classes)}
    for mid in ids:
        emb = np.load(Path(embeddings_dir) / mid / "eval.npy", mmap_mode="r")
        for c in range(num_classes):
            members = np.flatnonzero(labels == c)
            if len(members) < settings.prototypes + settings.criticisms:
                continue
            got = mmd_critic(np.asarray(emb[members]), prototypes=settings.prototypes, criticisms=settings.criticisms,
                             gamma=settings.gamma, max_candidates=settings.max_candidates, seed=settings.seed,
                             device=device)
            protos[c][mid] = sample_ids[members[got.prototypes]]
            rows += [{"model": mid, "class": c, "kind": "prototype", "rank": r + 1, "sample_id": int(s),
                      "witness": None} for r, s in enumerate(protos[c][mid])]
            rows += [{"model": mid, "class": c, "kind": "criticism", "rank": r + 1,
                      "sample_id": int(sample_ids[members[i]]), "witness": float(w)}
                     for r, (i, w) in enumerate(zip(got.criticisms, got.witness))]
    overlap = [{"class": c, "model_a": a, "model_b": b, "overlap": v}
               for c, picks in protos.items() for (a, b), v in prototype_overlap(picks).items()]
    schema = {"model": pl.String, "class": pl.Int64, "kind": pl.String, "rank": pl.Int64, "sample_id": pl.Int64,
              "witness": pl.Float64}
    return (pl.DataFrame(rows, schema=schema),
            pl.DataFrame(overlap, schema={"class": pl.Int64, "model_a": pl.String, "model_b": pl.String,
                                          "overlap": pl.Float64}))


def robustness_table(classifiers: Mapping[str, Classifier], inputs: Mapping[str, torch.Tensor], y: torch.Tensor, *,
                     settings: MistakesSettings, skip: tuple[str, float] | None = None) -> pl.DataFrame:
    """Accuracy under attack of every model: {model, attack, eps, accuracy}; eps 0 is the clean accuracy.
    ``skip`` = (attack, eps) leaves out the budget the transfer matrix's diagonal already gives."""
    rows = []
    for mid, fn in classifiers.items():
        clean = float((predict(fn, inputs[mid]) == y.numpy()).mean())
        for method in ("fgsm", "pgd"):
            rows.append({"model": mid, "attack": method, "eps": 0.0, "accuracy": clean})
            for eps in settings.eps:
                if skip == (method, eps):
                    continue
                acc = robust_accuracy(fn, inputs[mid], y, method=method, eps=eps, steps=settings.pgd_steps,
                                      seed=settings.seed)
                rows.append({"model": mid, "attack": method, "eps": eps, "accuracy": acc})
    return pl.DataFrame(rows)


def kappa_matrix(pairs: pl.DataFrame, ids: list[str] | tuple[str, ...]) -> np.ndarray:
    """The symmetric error-consistency matrix float64 [M, M] from the ensemble stage's pairs table (nan diagonal
    and missing pairs)."""
    index = {m: i for i, m in enumerate(ids)}
    out = np.full((len(ids), len(ids)), np.nan)
    for a, b, k in pairs.select("model_a", "model_b", "kappa").iter_rows():
        if a in index and b in index:
            out[index[a], index[b]] = out[index[b], index[a]] = k
    return out


def transfer_table(classifiers: Mapping[str, Classifier], inputs: Mapping[str, torch.Tensor], y: torch.Tensor,
                   kappa: np.ndarray, *, settings: MistakesSettings) -> tuple[pl.DataFrame, dict[str, float]]:
    """The transfer matrix as rows {source, target, attack, eps, accuracy, transfer_rate, kappa} (transfer_rate
    = 1 - accuracy; kappa of the pair, nan on the diagonal), and the correlation of the transfer rate with
    kappa over ordered pairs (:func:`zooscope.adversarial.matrix_correlation`)."""
    got = transfer_matrix(classifiers, inputs, y, method=settings.transfer_attack, eps=settings.transfer_eps,
                          steps=settings.pgd_steps, seed=settings.seed)
    ids = got.models
    rows = [{"source": a, "target": b, "attack": settings.transfer_attack, "eps": settings.transfer_eps,
             "accuracy": got.accuracy[i, j], "transfer_rate": 1.0 - got.accuracy[i, j], "kappa": kappa[i, j]}
            for i, a in enumerate(ids) for j, b in enumerate(ids)]
    return pl.DataFrame(rows), matrix_correlation(1.0 - got.accuracy, kappa)


def adversarial_examples(classifiers: Mapping[str, Classifier], source: str, inputs: torch.Tensor, y: torch.Tensor,
                         sample_ids: np.ndarray, *, embed, explain: dict, settings: MistakesSettings
                         ) -> tuple[pl.DataFrame, np.ndarray]:
    """The transfer attack's examples crafted on ``source`` that fool it (clean prediction right), up to
    ``settings.show``, each explained by its nearest training samples in ``source``'s embedding, clean and
    adversarial. ``embed`` maps pixels [b, C, H, W] to embeddings [b, d] (numpy); ``explain`` as in
    :func:`consensus_table`.

    Returns (rows {source, sample_id, label, eps, clean_pred, adv_pred, votes (every model's prediction on
    the example, study order), clean_/adv_neighbour_ids, clean_/adv_neighbour_labels}, images float32
    [rows, C, H, W] in [0, 1], row order).
    """
    fn = classifiers[source]
    adv = attack(fn, inputs, y, method=settings.transfer_attack, eps=settings.transfer_eps, steps=settings.pgd_steps,
                 seed=settings.seed)
    clean_pred, adv_pred = predict(fn, inputs), predict(fn, adv)
    labels = y.numpy()
    pick = np.flatnonzero((clean_pred == labels) & (adv_pred != labels))[:settings.show]
    votes = np.stack([predict(c, adv[pick]) for c in classifiers.values()], 1) if len(pick) else np.zeros((0, 0))
    ex = {}
    for kind, x in (("clean", inputs[pick]), ("adv", adv[pick])):
        ex[kind] = _explanations(explain["train"], embed(x) if len(pick) else np.zeros((0, explain["train"].shape[1])),
                                 explain["train_ids"], explain["train_labels"], k=settings.explain_k)
    frame = pl.DataFrame({
        "source": [source] * len(pick), "sample_id": sample_ids[pick], "label": labels[pick],
        "eps": [settings.transfer_eps] * len(pick), "clean_pred": clean_pred[pick], "adv_pred": adv_pred[pick],
        "votes": votes.tolist(), "clean_neighbour_ids": ex["clean"][0], "clean_neighbour_labels": ex["clean"][1],
        "adv_neighbour_ids": ex["adv"][0], "adv_neighbour_labels": ex["adv"][1],
    }, schema_overrides={"source": pl.String, "eps": pl.Float64, "votes": pl.List(pl.Int64),
                         **{f"{k}_neighbour_{w}": pl.List(pl.Int64) for k in ("clean", "adv") for w in ("ids", "labels")}})
    return frame, adv[pick].numpy().astype(np.float32)
