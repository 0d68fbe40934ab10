"""Explanation by example (docs/science.md section 7): a sample's nearest training samples in a model's
embedding (cosine similarity, through the FAISS wrapper), and the same for any batch of embeddings
such as adversarial examples; and what the model predicts for that sample, with its calibrated confidence."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zooscope.artifacts import load_embeddings
from zooscope.mistakes.samples import locate_sample

__all__ = ["nearest_training", "explain_sample", "sample_prediction", "describe_prediction"]


def nearest_training(train: np.ndarray, queries: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` training samples most similar (cosine) to each query.

    Args:
        train: float [n, d], the training split in a model's embedding; queries: float [m, d], same model.

    Returns:
        (similarity float32 [m, k], positions int64 [m, k] into ``train``), most similar first.
    """
    from zooscope.models.knn import l2_normalize, search

    train, queries = np.asarray(train), np.asarray(queries)
    if train.ndim != 2 or queries.ndim != 2 or train.shape[1] != queries.shape[1]:
        raise ValueError(f"train {train.shape} and queries {queries.shape} must be [n, d] and [m, d] with equal d")
    if not 1 <= k <= len(train):
        raise ValueError(f"k must lie in [1, {len(train)}], got {k}")
    return search(l2_normalize(train), l2_normalize(queries), k=k)


def explain_sample(embeddings_dir: str | Path, dataset, sample_id: int, *, k: int) -> tuple[dict, list[dict]]:
    """The ``k`` nearest training samples of one sample in one model's embedding.

    Args:
        embeddings_dir: the model's embed folder (``train.npy``, and ``calibration.npy`` / ``eval.npy``).
        dataset: the study's :class:`zooscope.data.datasets.Dataset`.
        sample_id: a sample id of any split.

    Returns:
        (the query ``{sample_id, split, label, class}``, rows ``{rank, sample_id, label, class, similarity}``, most
        similar first).

    Raises:
        ValueError: no sample of the study's splits has that id (naming it and the valid ids).
    """
    split, row = locate_sample(dataset, sample_id)
    pos = int(dataset.splits[split][row])
    arrays = load_embeddings(embeddings_dir, ("train",) if split == "train" else ("train", split))
    sim, ids = nearest_training(arrays["train"], arrays[split][row:row + 1], k=k + (split == "train"))
    train_pos = dataset.splits["train"][ids[0]]
    keep = train_pos != pos  # a training sample is not its own explanation
    rows = [{"rank": r + 1, "sample_id": int(dataset.sample_ids[p]), "label": int(dataset.labels[p]),
             "class": dataset.classes[int(dataset.labels[p])], "similarity": float(s)}
            for r, (p, s) in enumerate(zip(train_pos[keep][:k], sim[0][keep][:k]))]
    query = {"sample_id": int(sample_id), "split": split, "label": int(dataset.labels[pos]),
             "class": dataset.classes[int(dataset.labels[pos])]}
    return query, rows


def sample_prediction(model: str, dataset, sample_id: int, *, predictions: str | Path, embeddings: str | Path,
                      metrics: str | Path) -> dict | None:
    """What ``model`` predicts for one sample of any split, with temperature-scaled (calibrated) probabilities.

    Calibration and eval: the predict stage's ``<predictions>/<model>/<split>_probs.npy`` (already scaled by the
    temperature fitted on the calibration split). Train: the head's logits ``<embeddings>/<model>/train_logits.npy``
    through a softmax at that temperature (``<metrics>/<model>.json``); a headless model's probe predicts no
    training sample, so there is nothing to show (None).

    Args:
        model: the model id; dataset: the study's dataset; sample_id: a sample id of any split.
        predictions, embeddings, metrics: the predict, embed and per-model metrics folders (the model's files are
            ``<folder>/<model>/...``, ``<metrics>/<model>.json``).

    Returns:
        ``{pred, confidence, probs, source}``: the predicted class, its probability, float64 [C] probabilities and
        a sentence naming the file(s) they come from and how they were scaled; None as said.

    Raises:
        FileNotFoundError: an artifact is missing; ValueError: it holds another number of rows than the split (both
            name the file and the stage to run).
    """
    from zooscope.artifacts import logits_file, model_metrics_file, prediction_files, read_model_metrics
    from zooscope.models.calibration import softmax

    split, row = locate_sample(dataset, sample_id)
    n = len(dataset.split(split))
    if split == "train":
        path = logits_file(Path(embeddings) / model, split)
        if not path.exists():
            return None
        found, where = read_model_metrics(metrics, model), model_metrics_file(metrics, model)
        if found is None:
            raise FileNotFoundError(f"{where}: not found; run predict@{model} first (its fitted temperature scales "
                                    "the training logits)")
        t = found["temperature"]  # None: the calibration logits are equal within rows, uniform at any temperature
        probs = softmax(_row(path, row, n, f"embed@{model}")[None], temperature=1.0 if t is None else t)[0]
        scaled = f"at the temperature T={t:.3f} fitted on the calibration split ({where})" if t is not None else \
            f"without a temperature ({where} has none)"
        source = (f"{path}: the head's logits, softmax {scaled}; on the train split, confidence is optimistic for "
                  "models fit to it")
    else:
        path = prediction_files(Path(predictions) / model, split)[1]
        probs = np.asarray(_row(path, row, n, f"predict@{model}"), dtype=np.float64)
        source = f"{path}: the predict stage's probabilities, temperature-scaled on the calibration split"
    pred = int(np.argmax(probs))
    return {"pred": pred, "confidence": float(probs[pred]), "probs": probs, "source": source}


def describe_prediction(model: str, query: dict, prediction: dict | None, classes: Sequence[str]) -> str:
    """One sentence: what ``model`` predicts for the sample :func:`explain_sample` described as ``query``, how
    confidently, and where that comes from (``prediction``: :func:`sample_prediction`'s result)."""
    if prediction is None:
        return (f"{model} predicts nothing for the {query['split']} split: it has no head, and its linear probe "
                "predicts the calibration and eval splits only.")
    pred, label = prediction["pred"], query["label"]
    verdict = "right" if pred == label else \
        f"wrong; the label {classes[label]} has probability {prediction['probs'][label]:.3f}"
    return (f"{model} predicts {classes[pred]} with confidence {prediction['confidence']:.3f} ({verdict}); "
            f"from {prediction['source']}.")


def _row(path: Path, row: int, n: int, stage: str) -> np.ndarray:
    """Row ``row`` of a per-split ``.npy`` artifact of ``n`` rows (read memory-mapped)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run {stage} first")
    array = np.load(path, mmap_mode="r")
    if len(array) != n:
        raise ValueError(f"{path}: {len(array)} rows but the split has {n} samples; re-run {stage}")
    return np.asarray(array[row])
