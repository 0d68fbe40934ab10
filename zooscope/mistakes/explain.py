"""Explanation by example (docs/science.md section 7): a sample's nearest training samples in a model's
embedding (cosine similarity, through the FAISS wrapper), and the same for any batch of embeddings
such as adversarial examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zooscope.artifacts import load_embeddings
from zooscope.mistakes.samples import locate_sample

__all__ = ["nearest_training", "explain_sample"]


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

