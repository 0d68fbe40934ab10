"""Mutual k-NN alignment of two models' representations of the same samples (Huh et al. 2024; docs/science.md
section 5): how many nearest neighbours each sample keeps from one embedding to the other.

Neighbour lists come from blocked FAISS search (``zooscope.models.knn``), so no [n, n] matrix is held. The
neighbours of shuffled rows are the shuffled neighbours, so the permutation null needs no new search.
"""

from __future__ import annotations

import numpy as np

from zooscope._checks import check_embeddings
from zooscope.models.knn import l2_normalize, search
from zooscope.similarity.nulls import permutations, with_null

__all__ = ["knn_ids", "mutual_knn", "mutual_knn_scores"]


def knn_ids(x: np.ndarray, *, k: int) -> np.ndarray:
    """The ``k`` nearest other samples of each row of ``x`` [n, d] by cosine similarity: int64 [n, k].

    Found with ``zooscope.models.knn.search`` (FAISS, GPU when present, blocked so no [n, n] matrix is held).
    """
    x = np.asarray(x)
    if x.ndim != 2 or not 1 <= k < len(x):
        raise ValueError(f"x must be [n_samples, d] and k between 1 and n_samples - 1 = {len(x) - 1}, got {x.shape}, k={k}")
    return search(l2_normalize(x), l2_normalize(x), k=k, exclude_self=True)[1]


def _shared_fraction(ids_x: np.ndarray, ids_y: np.ndarray) -> float:
    """mean_i |ids_x[i] ∩ ids_y[i]| / k for neighbour lists int [n, k] (memory n * k * k)."""
    return float((ids_x[:, :, None] == ids_y[:, None, :]).any(-1).sum(1).mean() / ids_x.shape[1])


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
    return _shared_fraction(knn_ids(x, k=k), knn_ids(y, k=k))


def mutual_knn_scores(ids_x: np.ndarray, ids_y: np.ndarray, *, n_perm: int = 20, seed: int = 0) -> dict[str, float]:
    """Mutual k-NN alignment from two models' neighbour lists (:func:`knn_ids`), with its permutation null.

    Shuffling y's rows by p gives row i the neighbours p^-1(ids_y[p[i]]), so the null needs no search;
    it equals ``permutation_null(partial(mutual_knn, k=k), x, y, n_perm=n_perm, seed=seed)`` (up to how
    exact ties between neighbour distances are broken).

    Args:
        ids_x, ids_y: int [n_samples, k], the same k.

    Returns:
        ``mutual_knn``, ``mutual_knn_null``, ``mutual_knn_null_std``, ``mutual_knn_corrected``.
    """
    ids_x, ids_y = np.asarray(ids_x), np.asarray(ids_y)
    if ids_x.shape != ids_y.shape or ids_x.ndim != 2:
        raise ValueError(f"neighbour lists must both be [n_samples, k], got {ids_x.shape} and {ids_y.shape}")
    null = []
    for perm in permutations(len(ids_y), n_perm=n_perm, seed=seed):
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        null.append(_shared_fraction(ids_x, inverse[ids_y[perm]]))
    return with_null("mutual_knn", _shared_fraction(ids_x, ids_y), null)
