"""The mistake taxonomy (Stock & Cisse 2018; docs/science.md section 7): near misses (the label among the top k,
:func:`near_miss_k`) and confusion pairs per model, consensus errors over the zoo, and neighbour disagreement in
one embedding.

A consensus error is a sample where a large share of the zoo predicts the same wrong class: a candidate
label error or a genuinely ambiguous image rather than a model's private failure. Neighbour disagreement
flags samples whose label differs from the plurality label (the most frequent one) of their k nearest eval neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zooscope._checks import as_labels

__all__ = ["Consensus", "NeighbourDisagreement", "near_miss_k", "mistake_counts", "confusion_pairs", "consensus_errors",
           "neighbour_disagreement"]


#: Stock & Cisse's k (top 5 on ImageNet's 1,000 classes) applies from this many classes on; fewer take k = 2.
MANY_CLASSES = 100


def near_miss_k(k: int | None, *, num_classes: int) -> int:
    """The k of a near miss (the label among the model's top k): ``k`` as declared (``mistakes.near_miss_k``),
    or with None, 5 for datasets of at least 100 classes (Stock & Cisse on ImageNet) and 2 for fewer, where the
    top 5 would hold a large share of the classes (1 for 2 classes: their top 2 holds every class)."""
    if num_classes < 2:
        raise ValueError(f"a near miss needs at least 2 classes, the dataset has {num_classes}")
    if k is None:
        return 5 if num_classes >= MANY_CLASSES else min(2, num_classes - 1)
    if not 1 <= k < num_classes:
        raise ValueError(f"mistakes.near_miss_k must lie in [1, {num_classes - 1}] (fewer than the dataset's "
                         f"{num_classes} classes), got {k}")
    return k


def mistake_counts(labels: np.ndarray, topk: np.ndarray) -> dict[str, int]:
    """One model's taxonomy from its ranked predictions.

    Args:
        labels: int [n]; topk: int [n, k] classes ranked by probability (column 0 is the prediction), k the
            near-miss k (:func:`near_miss_k`).

    Returns:
        ``{n, correct, near_miss, far_miss}``: near miss = wrong but the label in the top k, far miss = the rest.
    """
    topk = np.asarray(topk)
    if topk.ndim != 2 or topk.shape[1] < 1:
        raise ValueError(f"topk must be [n, k] with k >= 1, got shape {topk.shape}")
    labels = as_labels(labels, n=len(topk), allow_empty=True)
    correct = topk[:, 0] == labels
    in_top = (topk == labels[:, None]).any(1)
    return {"n": len(labels), "correct": int(correct.sum()), "near_miss": int((in_top & ~correct).sum()),
            "far_miss": int((~in_top).sum())}


def confusion_pairs(labels: np.ndarray, pred: np.ndarray, *, num_classes: int, top: int) -> np.ndarray:
    """The ``top`` most frequent (true -> predicted) confusions of one model.

    Args:
        labels, pred: int [n].

    Returns:
        int64 [<= top, 3] rows (true, pred, count), most frequent first (ties: by true, then predicted class);
        only pairs that occur.
    """
    pred = np.asarray(pred, np.int64)
    labels = as_labels(labels, n=len(pred), allow_empty=True)
    wrong = pred != labels
    counts = np.bincount(labels[wrong] * num_classes + pred[wrong], minlength=num_classes * num_classes)
    order = np.argsort(-counts, kind="stable")[:top]
    order = order[counts[order] > 0]
    return np.stack([order // num_classes, order % num_classes, counts[order]], 1).astype(np.int64)


@dataclass(frozen=True)
class Consensus:
    """Consensus errors, ranked (most shared first; ties: the zoo's mean confidence in that class).

    Attributes:
        positions: int64 [e], positions of the flagged samples in the eval arrays.
        wrong_class: int64 [e], the wrong class most models predict.
        share: float64 [e], the share of models predicting it.
        confidence: float64 [e], the zoo's mean probability of that class (nan without probabilities).
    """

    positions: np.ndarray
    wrong_class: np.ndarray
    share: np.ndarray
    confidence: np.ndarray


def consensus_errors(preds: np.ndarray, labels: np.ndarray, *, num_classes: int, min_share: float,
                     mean_probs: np.ndarray | None = None) -> Consensus:
    """Samples where at least ``min_share`` of the models predict the same wrong class.

    Args:
        preds: int [n_models, n] predicted classes.
        labels: int [n].
        min_share: in (0, 1].
        mean_probs: optional float [n, num_classes], the zoo's mean probabilities (ranks ties by confidence).
    """
    preds = np.asarray(preds, np.int64)
    if preds.ndim != 2:
        raise ValueError(f"preds must be [n_models, n], got shape {preds.shape}")
    labels = as_labels(labels, n=preds.shape[1], allow_empty=True)
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must lie in (0, 1], got {min_share}")
    n_models, n = preds.shape
    votes = np.zeros((n, num_classes), np.int64)
    np.add.at(votes, (np.broadcast_to(np.arange(n), preds.shape), preds), 1)
    votes[np.arange(n), labels] = -1  # only wrong classes compete
    wrong = votes.argmax(1)
    share = votes[np.arange(n), wrong] / n_models
    flagged = np.flatnonzero(share >= min_share - 1e-12)
    if mean_probs is not None:
        mean_probs = np.asarray(mean_probs)
        if mean_probs.shape != (n, num_classes):
            raise ValueError(f"mean_probs must be [n, num_classes] = {(n, num_classes)}, got {mean_probs.shape}")
        conf = mean_probs[flagged, wrong[flagged]].astype(np.float64)
    else:
        conf = np.full(len(flagged), np.nan)
    order = np.lexsort((flagged, -np.nan_to_num(conf, nan=0.0), -share[flagged]))
    pos = flagged[order]
    return Consensus(pos.astype(np.int64), wrong[pos].astype(np.int64), share[pos].astype(np.float64), conf[order])


@dataclass(frozen=True)
class NeighbourDisagreement:
    """Samples whose label disagrees with the plurality (most frequent) label of their k nearest neighbours,
    ranked (the share of neighbours with another label first, then the plurality's share).

    Attributes:
        positions: int64 [e]; plurality: int64 [e], the neighbours' most frequent label (not necessarily a majority);
        other_share: float64 [e], share of neighbours whose label differs from the sample's;
        plurality_share: float64 [e], share of neighbours holding the plurality label.
    """

    positions: np.ndarray
    plurality: np.ndarray
    other_share: np.ndarray
    plurality_share: np.ndarray


def neighbour_disagreement(embeddings: np.ndarray, labels: np.ndarray, *, k: int, num_classes: int) -> NeighbourDisagreement:
    """Cosine k nearest neighbours of every sample among the others (FAISS, :mod:`zooscope.models.knn`).

    Args:
        embeddings: float [n, d], one model's embedding of the samples; labels: int [n].
    """
    from zooscope.models.knn import l2_normalize, majority_vote, search

    labels = as_labels(labels, n=len(embeddings), allow_empty=True)
    if k < 1 or k >= len(labels):
        raise ValueError(f"k must lie in [1, n - 1] = [1, {len(labels) - 1}], got {k}")
    z = l2_normalize(embeddings)
    _, ids = search(z, z, k=k, exclude_self=True)
    neigh = labels[ids]
    plurality, votes = majority_vote(neigh, num_classes=num_classes)
    flagged = np.flatnonzero(plurality != labels)
    other = (neigh[flagged] != labels[flagged, None]).mean(1)
    maj_share = votes[flagged, plurality[flagged]] / k
    order = np.lexsort((flagged, -other, -maj_share))
    pos = flagged[order]
    return NeighbourDisagreement(pos.astype(np.int64), plurality[pos], other[order], maj_share[order])
