"""Mutual k-NN alignment of two models' representations of the same samples (Huh et al. 2024; docs/science.md
section 5): how many nearest neighbours each sample keeps from one embedding to the other.

Neighbour lists come from blocked FAISS search (``zooscope.models.knn``), once per model, so no [n, n] matrix
is held. The neighbours of shuffled rows are the shuffled neighbours, so the permutation null needs no new
search; :func:`mutual_knn_pairs` scores many pairs at once, shuffling each model's lists once per permutation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zooscope._checks import check_embeddings
from zooscope.models.knn import l2_normalize, search
from zooscope.similarity.nulls import shuffled_pairs, with_null

__all__ = ["knn_ids", "mutual_knn", "mutual_knn_scores", "mutual_knn_pairs"]


def knn_ids(x: np.ndarray, *, k: int) -> np.ndarray:
    """The ``k`` nearest other samples of each row of ``x`` [n, d] by cosine similarity: int64 [n, k].

    Found with ``zooscope.models.knn.search`` (FAISS, GPU when present, blocked so no [n, n] matrix is held).
    """
    x = np.asarray(x)
    if x.ndim != 2 or not 1 <= k < len(x):
        raise ValueError(f"x must be [n_samples, d] and k between 1 and n_samples - 1 = {len(x) - 1}, got {x.shape}, k={k}")
    unit = l2_normalize(x)
    return search(unit, unit, k=k, exclude_self=True)[1]


def _by_rank(ids: np.ndarray) -> np.ndarray:
    """Neighbour lists int [n, k] as int [k, n], contiguous: row r holds every sample's r-th neighbour, so that
    comparing two models' lists runs along the samples. Refuses a list that holds an id twice."""
    ids = np.asarray(ids)
    ordered = np.sort(ids, axis=1)
    if (ordered[:, 1:] == ordered[:, :-1]).any():
        raise ValueError("a sample's neighbour list holds the same id twice; neighbour lists are sets (knn_ids)")
    return np.ascontiguousarray(ids.T)


def _shared_fraction(rank_x: np.ndarray, rank_y: np.ndarray) -> float:
    """mean_i |N_x(i) ∩ N_y(i)| / k for neighbour lists by rank int [k, n] (:func:`_by_rank`; memory k * k * n):
    no list holds an id twice, so each shared neighbour is one equal pair of entries."""
    k, n = rank_x.shape
    return float(np.count_nonzero(rank_x[:, None, :] == rank_y[None, :, :]) / n / k)


def _shuffled(rank: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """The lists by rank int [k, n] of the samples reordered by ``perm`` int [n]: sample i's neighbours are
    perm^-1 of sample perm[i]'s, their new positions (in the lists' dtype, so comparisons need no casting)."""
    inverse = np.empty(len(perm), rank.dtype)
    inverse[perm] = np.arange(len(perm))
    return inverse[rank[:, perm]]


def mutual_knn(x: np.ndarray, y: np.ndarray, *, k: int = 10) -> float:
    """Mutual k-NN alignment (Huh et al. 2024): mean_i |N_x(i) ∩ N_y(i)| / k.

    N_x(i) are the ``k`` nearest neighbours of sample i among the other samples, by inner product of
    L2-normalised rows of ``x`` (cosine similarity); see :func:`knn_ids`.

    Args:
        x: float [n_samples, d1]; y: float [n_samples, d2]; rows are the same samples.
        k: neighbours per sample, 1 <= k < n_samples.

    Returns:
        Score in [0, 1]; 1 when both embeddings give every sample the same neighbour set.
    """
    x, y = check_embeddings(x, y, min_samples=2)
    if not 1 <= k < len(x):
        raise ValueError(f"k must be between 1 and n_samples - 1 = {len(x) - 1}, got {k}")
    return _shared_fraction(_by_rank(knn_ids(x, k=k)), _by_rank(knn_ids(y, k=k)))


def mutual_knn_scores(ids_x: np.ndarray, ids_y: np.ndarray, *, n_perm: int = 20, seed: int = 0) -> dict[str, float]:
    """Mutual k-NN alignment from two models' neighbour lists (:func:`knn_ids`), with its permutation null.

    Shuffling y's rows by p gives row i the neighbours p^-1(ids_y[p[i]]), so the null needs no search;
    it equals ``permutation_null(partial(mutual_knn, k=k), x, y, n_perm=n_perm, seed=seed)`` (up to how
    exact ties between neighbour distances are broken).

    Args:
        ids_x, ids_y: int [n_samples, k], the same k; no row holds an id twice.

    Returns:
        ``mutual_knn``, ``mutual_knn_null``, ``mutual_knn_null_std``, ``mutual_knn_corrected``.
    """
    return mutual_knn_pairs([ids_x, ids_y], [(0, 1)], n_perm=n_perm, seed=seed)[0]


def mutual_knn_pairs(ids: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]], *, n_perm: int = 20,
                     seed: int = 0) -> list[dict[str, float]]:
    """:func:`mutual_knn_scores` of each pair (i, j) of ``ids`` (each model's :func:`knn_ids`, int [n_samples, k],
    the same n and k), the same numbers: each model's lists are shuffled once per permutation for all the pairs
    it is the second of.

    Returns:
        One dict per pair, in order, with the fields of :func:`mutual_knn_scores`.
    """
    shapes = {np.shape(i) for i in ids}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"neighbour lists must all be [n_samples, k], got shapes {sorted(shapes)}")
    ranks = [_by_rank(i) for i in ids]
    null = shuffled_pairs(ranks, pairs, score=_shared_fraction, shuffle=_shuffled, n_samples=ranks[0].shape[1],
                          n_perm=n_perm, seed=seed)
    return [with_null("mutual_knn", _shared_fraction(ranks[i], ranks[j]), draws)
            for (i, j), draws in zip(pairs, null, strict=True)]
