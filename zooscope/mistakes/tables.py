"""The mistakes stage's tables: the library's mistake, criticism and adversarial functions applied to a
zoo's artifacts, as long-format polars frames (one file each under ``artifacts/mistakes/``).

Every function reads one model's arrays at a time (memory-mapped), so no N x N sample matrix and no
all-models logits tensor is held. The expensive parts (MMD-critic per model, the attacks per model and the transfer
per ordered pair) come from :mod:`zooscope.mistakes.parts`, cached in the stage's cache folder.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from zooscope.artifacts import Predictions, embedding_file, pair_matrix, prediction_files, read_predictions
from zooscope.config import MistakesSettings, Study, trained_apart
from zooscope.mistakes.adversarial import Transfer, matrix_correlation, transfer_rates
from zooscope.mistakes.critic import prototype_mmd
from zooscope.mistakes.explain import nearest_training
from zooscope.mistakes.parts import (ZooModels, attack_plan, critic_picks, robust_accuracies, robustness_rows,
                                     transfer_results)
from zooscope.mistakes.taxonomy import (confusion_pairs, consensus_errors, mistake_counts, near_miss_k,
                                        neighbour_disagreement)
from zooscope.models.calibration import topk
from zooscope.models.embed import pick_device

__all__ = ["MistakesTables", "mistakes_tables", "taxonomy_tables", "consensus_table", "neighbour_table", "critic_tables",
           "transfer_table", "adversarial_examples"]


def _ranked(folder: Path, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One model's eval labels int [n] and top-k classes int [n, k]: the predict stage's top-5 column, or its
    stored probabilities when k > 5."""
    table, probs = prediction_files(folder)
    frame = pl.read_parquet(table, columns=["label", "top5"])
    top = np.stack(frame["top5"].to_numpy())
    return frame["label"].to_numpy(), top[:, :k] if k <= top.shape[1] else topk(np.load(probs, mmap_mode="r"), k=k)


def taxonomy_tables(predictions_dir: str | Path, ids: list[str], *, num_classes: int, near_miss_k: int,
                    top_confusions: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per model: (taxonomy rows {model, n, correct, near_miss, far_miss}, a near miss being an error with the label
    among the top ``near_miss_k``; confusion rows {model, rank, true, pred, count})."""
    tax, conf = [], []
    for mid in ids:
        labels, top = _ranked(Path(predictions_dir) / mid, near_miss_k)
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
    model's prediction, in the order of ``preds``: the mistakes stage gives the models trained apart), neighbour_ids / neighbour_labels / neighbour_sim (the ``k`` nearest
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
    """Neighbour disagreement in one model's eval embedding, ranked: {rank, sample_id, label, plurality,
    plurality_share, other_share, model}."""
    got = neighbour_disagreement(embeddings, labels, k=k, num_classes=num_classes)
    return pl.DataFrame({
        "rank": np.arange(1, len(got.positions) + 1), "sample_id": sample_ids[got.positions],
        "label": labels[got.positions], "plurality": got.plurality, "plurality_share": got.plurality_share,
        "other_share": got.other_share, "model": [model] * len(got.positions)}, schema_overrides={"model": pl.String})


def critic_tables(embeddings_dir: str | Path, ids: list[str], labels: np.ndarray, sample_ids: np.ndarray, *,
                  num_classes: int, base: str, settings: MistakesSettings, threads: int,
                  device: str | torch.device = "cpu", cache: str | Path | None = None,
                  progress: bool = False) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """MMD-critic (on ``device``) on each model's eval embedding, per class: (picks {model, class, kind
    ('prototype' | 'criticism'), rank, sample_id, witness}, overlap {class, model_a, model_b, mmd2, reference,
    ratio}: the MMD^2 between the two models' prototypes in the ``base`` model's eval embedding, its expectation
    for two random draws of the class's samples (:func:`zooscope.mistakes.critic.prototype_mmd`) and their ratio,
    0 for the same prototypes, 1 for no more alike than random samples; the number of models whose picks were
    computed, the others' came from ``cache`` (:func:`zooscope.mistakes.parts.critic_picks`))."""
    rows: list[dict] = []
    protos: dict[int, dict[str, np.ndarray]] = {c: {} for c in range(num_classes)}  # rows into the class's members
    members = [np.flatnonzero(labels == c) for c in range(num_classes)]
    picked, computed = critic_picks(embeddings_dir, ids, labels, num_classes=num_classes, settings=settings,
                                    threads=threads, device=device, cache=cache, progress=progress)
    for mid in ids:
        for c, got in picked[mid].items():
            at = members[c]
            protos[c][mid] = got["prototypes"]
            rows += [{"model": mid, "class": c, "kind": "prototype", "rank": r + 1, "sample_id": int(sample_ids[at[i]]),
                      "witness": None} for r, i in enumerate(got["prototypes"])]
            rows += [{"model": mid, "class": c, "kind": "criticism", "rank": r + 1,
                      "sample_id": int(sample_ids[at[i]]), "witness": float(w)}
                     for r, (i, w) in enumerate(zip(got["criticisms"], got["witness"]))]
    shared = np.load(embedding_file(Path(embeddings_dir) / base, "eval"), mmap_mode="r")
    overlap = []
    for c, picks in protos.items():
        if len(picks) < 2 or len(members[c]) < 2:
            continue
        got = prototype_mmd(np.asarray(shared[members[c]]), list(picks.values()), gamma=settings.gamma,
                            seed=settings.seed, device=device)
        names = list(picks)
        for i, j in itertools.combinations(range(len(names)), 2):
            ref = float(got.reference[i, j])
            overlap.append({"class": c, "model_a": names[i], "model_b": names[j], "mmd2": float(got.mmd2[i, j]),
                            "reference": ref, "ratio": float(got.mmd2[i, j]) / ref if ref > 0 else float("nan")})
    schema = {"model": pl.String, "class": pl.Int64, "kind": pl.String, "rank": pl.Int64, "sample_id": pl.Int64,
              "witness": pl.Float64}
    return (pl.DataFrame(rows, schema=schema),
            pl.DataFrame(overlap, schema={"class": pl.Int64, "model_a": pl.String, "model_b": pl.String,
                                          "mmd2": pl.Float64, "reference": pl.Float64, "ratio": pl.Float64}), computed)


def transfer_table(got: Transfer, y: torch.Tensor, kappa: np.ndarray, accuracy: np.ndarray, *,
                   settings: MistakesSettings, among: Sequence[str] | None = None) -> tuple[pl.DataFrame, dict[str, float]]:
    """The transfer matrix ``got`` (:func:`zooscope.mistakes.adversarial.transfer_matrix`) as rows {source, target, attack, eps, accuracy (of the target on the source's examples),
    transfer_rate, transfer_rate_lo, transfer_rate_hi, eligible, kappa} (the rate of
    :func:`zooscope.mistakes.adversarial.transfer_rates` with its 95% interval over the attacked samples, nan on the
    diagonal; kappa of the pair, nan on the diagonal), the correlation of the transfer rate with kappa over ordered
    pairs, plain and with both models' eval ``accuracy`` [M] held fixed
    (:func:`zooscope.mistakes.adversarial.matrix_correlation`), over the ordered pairs of ``among`` (the models trained
    apart, :func:`zooscope.config.trained_apart`: a compression transfers to its parent as to itself) or of all."""
    rates = transfer_rates(got.clean, got.adversarial, y.numpy(), n_boot=settings.n_boot, seed=settings.seed)
    ids = got.models
    rows = [{"source": a, "target": b, "attack": settings.transfer_attack, "eps": settings.transfer_eps,
             "accuracy": got.accuracy[i, j], "transfer_rate": rates["rate"][i, j], "transfer_rate_lo": rates["lo"][i, j],
             "transfer_rate_hi": rates["hi"][i, j], "eligible": int(rates["eligible"][i, j]), "kappa": kappa[i, j]}
            for i, a in enumerate(ids) for j, b in enumerate(ids)]
    keep = np.array([ids.index(m) for m in (ids if among is None else among)])
    sub = np.ix_(keep, keep)
    return pl.DataFrame(rows), matrix_correlation(rates["rate"][sub], np.asarray(kappa)[sub],
                                                  accuracy=np.asarray(accuracy)[keep])


def adversarial_examples(transfer: Transfer, source: str, inputs: torch.Tensor,
                         y: torch.Tensor, sample_ids: np.ndarray, *, embed, explain: dict, settings: MistakesSettings
                         ) -> tuple[pl.DataFrame, np.ndarray]:
    """The transfer attack's examples crafted on ``source`` (kept in ``transfer``, not crafted again) that fool it
    (clean prediction right), up to ``settings.show``, each explained by its nearest training samples in
    ``source``'s embedding, clean and adversarial. ``embed`` maps pixels [b, C, H, W] to embeddings [b, d]
    (numpy); ``explain`` as in :func:`consensus_table`.

    Returns (rows {source, sample_id, label, eps, clean_pred, adv_pred, votes (every model's prediction on
    the example, study order), clean_/adv_neighbour_ids, clean_/adv_neighbour_labels}, images float32
    [rows, C, H, W] in [0, 1], row order).
    """
    index, adv = transfer.models.index(source), transfer.examples[source]
    every = transfer.adversarial[index]  # int64 [M, n]: every target's answer on them
    clean_pred, adv_pred = transfer.clean[index], every[index]
    labels = y.numpy()
    pick = np.flatnonzero((clean_pred == labels) & (adv_pred != labels))[:settings.show]
    votes = every[:, pick].T if len(pick) else np.zeros((0, 0))
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


def _findings(n_consensus: int, n_samples: int, share: float, strongest: str, n_neigh: int, corr: dict | None,
              transfer: pl.DataFrame | None) -> list[str]:
    lines = [f"consensus errors: {n_consensus} of {n_samples} eval samples ({n_consensus / n_samples:.1%}) have at "
             f"least {share:.0%} of the zoo predicting the same wrong class (candidate label errors or ambiguous images)",
             f"neighbour disagreement: {n_neigh} eval samples disagree with the plurality label of their neighbours "
             f"in {strongest}'s embedding"]
    if corr is None or transfer is None:
        lines.append("adversarial transfer: not measured (mistakes.attacks is false: no robustness, transfer or "
                     "adversarial examples)")
        return lines
    rho, partial = corr["spearman"], corr.get("spearman_partial", float("nan"))
    off = transfer.filter(transfer["source"] != transfer["target"])
    if rho == rho:  # not nan
        how = "more" if rho > 0 else "less"
        lines.append(f"adversarial transfer: examples crafted on one model fool another {how} often the more the two "
                     f"make the same mistakes (Spearman rho {rho:+.2f} between transfer rate and error consistency "
                     f"kappa over {corr['n']} ordered pairs, {partial:+.2f} with both models' accuracies held fixed; "
                     f"mean transfer rate {off['transfer_rate'].fill_nan(None).mean():.2f}: of the examples that fool the source, "
                     f"the share that also fool the target)")
    else:
        lines.append("adversarial transfer: too few pairs with kappa to relate transfer to error consistency")
    return lines


@dataclass(frozen=True)
class MistakesTables:
    """What the mistakes stage writes.

    Attributes:
        tables: name -> table, the names of ``zooscope.artifacts.MISTAKES_TABLES`` in that order; without the
            ``zooscope.artifacts.ATTACK_TABLES`` when ``mistakes.attacks`` is false.
        adversarial_images: float32 [rows of ``tables["adversarial"]``, C, H, W] in [0, 1]; None without attacks.
        metrics: ``metrics/mistakes.json`` (counts, taxonomy, robust accuracy, transfer vs kappa, findings;
            ``attacks``: whether the attacks ran).
        summary: one line saying what was computed, on which device, and what came from the cache.
        computed: part -> items computed this run, the rest came from the cache (``critic``: models; with attacks,
            ``robustness``: attacks, ``examples``: models, ``transfer``: ordered pairs).
    """

    tables: dict[str, pl.DataFrame]
    adversarial_images: np.ndarray | None
    metrics: dict[str, Any]
    summary: str
    computed: dict[str, int]

    @property
    def findings(self) -> list[str]:
        return self.metrics["findings"]


def mistakes_tables(study: Study, dataset, *, models: str | Path, embeddings: str | Path, probes: str | Path,
                    predictions: str | Path, pairs: pl.DataFrame, cache: str | Path | None = None,
                    progress: bool = False, log: Callable[[str], None] | None = None) -> MistakesTables:
    """The whole mistakes analysis of the study's zoo from the per-model stages' folders.

    Args:
        study: the study (models in order, ``mistakes`` and ``embed.device`` settings).
        dataset: the study's :class:`zooscope.data.datasets.Dataset` (labels, splits, images to attack).
        models, embeddings, probes, predictions: the per-model stages' folders (``<folder>/<id>/...``).
        pairs: the ensemble stage's pair table (kappa of every pair).
        cache: the folder of the per-model and per-pair caches (:mod:`zooscope.mistakes.parts`); None: none, every
            part is computed.
        progress: a progress bar per part. log: called first with one line estimating the attack work (pairs and
            attacks to compute against cached, images, PGD steps).
    """
    cfg, ids, apart = study.mistakes, list(study.models), trained_apart(study.models)
    preds = read_predictions(predictions, ids)
    voters = preds.select(apart)  # the consensus: the models trained apart
    eval_pos = dataset.split("eval")
    if not np.array_equal(dataset.sample_ids[eval_pos], preds.sample_ids):
        raise ValueError(f"{predictions}: eval sample ids differ from the dataset's eval split; re-run predict")
    nc = dataset.num_classes
    strongest = apart[int(voters.correct.mean(1).argmax())]
    train_pos = dataset.split("train")
    emb = Path(embeddings)
    explain = {"train": np.load(embedding_file(emb / strongest, "train"), mmap_mode="r"),
               "eval": np.load(embedding_file(emb / strongest, "eval"), mmap_mode="r"),
               "train_ids": dataset.sample_ids[train_pos], "train_labels": dataset.labels[train_pos]}
    k = near_miss_k(cfg.near_miss_k, num_classes=nc)
    device = pick_device(study.embed.device)
    rng = np.random.default_rng(cfg.seed)
    sub = np.sort(rng.choice(len(eval_pos), min(cfg.attack_subset, len(eval_pos)), replace=False))
    zoo = ZooModels(Path(models), Path(probes), dataset, eval_pos[sub], device)
    plan = attack_plan(zoo, ids, settings=cfg, threads=study.threads, cache=cache) if cfg.attacks else None
    if log is not None:
        log(plan.describe(cfg, device) if plan is not None else
            "mistakes: attacks off (mistakes.attacks: false): no robustness, transfer or adversarial examples")

    taxonomy, confusions = taxonomy_tables(predictions, ids, num_classes=nc, near_miss_k=k,
                                           top_confusions=cfg.top_confusions)
    consensus = consensus_table(voters, num_classes=nc, min_share=cfg.consensus_share, explain=explain,
                                k=cfg.explain_k, show=cfg.show)
    neighbours = neighbour_table(np.asarray(explain["eval"]), preds.labels, preds.sample_ids, k=cfg.neighbour_k,
                                 num_classes=nc, model=strongest)
    picks, overlap, n_critic = critic_tables(emb, ids, preds.labels, preds.sample_ids, num_classes=nc, base=study.base,
                                             settings=cfg, threads=study.threads, device=device, cache=cache,
                                             progress=progress)
    tables = {"taxonomy": taxonomy, "confusions": confusions, "consensus": consensus, "neighbours": neighbours,
              "prototypes": picks, "prototype_overlap": overlap}
    computed = {"critic": n_critic}
    metrics: dict[str, Any] = {
        "consensus_errors": len(consensus), "neighbour_disagreements": len(neighbours), "strongest": strongest,
        "eval_samples": len(preds.labels), "attacks": cfg.attacks,
        "taxonomy": {r["model"]: {k: r[k] for k in ("correct", "near_miss", "far_miss")} for r in taxonomy.to_dicts()},
        "near_miss_k": k,
        "prototype_mmd_ratio_mean": overlap["ratio"].drop_nans().mean(),
    }
    summary = f"mistakes: {len(ids)} models, strongest {strongest}; {len(picks)} prototypes/criticisms"
    if plan is None:
        metrics["findings"] = _findings(len(consensus), len(preds.labels), cfg.consensus_share, strongest,
                                        len(neighbours), None, None)
        return MistakesTables(tables, None, metrics, f"{summary} ({n_critic} of {len(ids)} models computed); attacks off "
                                                     "(mistakes.attacks: false)", computed)

    y = torch.as_tensor(preds.labels[sub])
    accuracies, computed["robustness"] = robust_accuracies(plan, zoo, y, settings=cfg, cache=cache, progress=progress)
    crafted, done = transfer_results(plan, zoo, y, settings=cfg, cache=cache, keep=(strongest,), progress=progress)
    computed |= done
    transfer, corr = transfer_table(crafted, y, pair_matrix(pairs, ids, "kappa"), preds.correct.mean(1), settings=cfg,
                                    among=apart)
    robustness = robustness_rows(accuracies, crafted, y.numpy(), settings=cfg)
    _, inputs, embed = zoo(strongest)
    adv_rows, adv_images = adversarial_examples(crafted, strongest, inputs, y, preds.sample_ids[sub], embed=embed,
                                                explain=explain, settings=cfg)
    tables |= {"robustness": robustness, "transfer": transfer, "adversarial": adv_rows}
    at = robustness.filter((pl.col("attack") == cfg.transfer_attack) & (pl.col("eps") == cfg.transfer_eps))
    metrics |= {
        "attack_subset": len(sub),
        f"robust_accuracy_{cfg.transfer_attack}_{cfg.transfer_eps:g}": dict(at.select("model", "accuracy").iter_rows()),
        "transfer_kappa": {k: (None if v != v else v) for k, v in corr.items()},
        "findings": _findings(len(consensus), len(preds.labels), cfg.consensus_share, strongest, len(neighbours), corr,
                              transfer),
    }
    summary += (f"; {len(sub)} images attacked on {device} ({', '.join(f'{e:g}' for e in cfg.eps)} eps), "
                f"transfer {len(ids)}x{len(ids)}; computed (the rest cached): MMD-critic {n_critic} of {len(ids)} "
                f"models, robustness {computed['robustness']} of {len(plan.robustness)} attacks, transfer examples "
                f"{computed['examples']} of {len(ids)} models, transfer {computed['transfer']} of "
                f"{len(plan.transfer)} ordered pairs")
    return MistakesTables(tables, adv_images, metrics, summary, computed)
