"""How alike are two models' representations of the same samples? (science.md section 5)

All scores take two embeddings of the same ``n`` samples in the same order, ``x`` [n, d1] and
``y`` [n, d2], and never build an [n, n] matrix: CKA works in feature space (O(n d1 d2)) and the
mutual k-NN score uses blocked FAISS search.

Permutation nulls shuffle the sample order of ``y``. :func:`permutation_null` does it for any score;
:func:`cka_scores` and :func:`mutual_knn_scores` give the same nulls for the pipeline's scores at a
fraction of the cost: everything but one [d1, d2] product is invariant under the shuffle for CKA, and
the neighbours of shuffled rows are the shuffled neighbours, so k-NN needs no new search.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from zooscope.knn import l2_normalize, search

__all__ = [
    "linear_cka",
    "linear_cka_debiased",
    "cka_scores",
    "knn_ids",
    "mutual_knn",
    "mutual_knn_scores",
    "permutation_null",
]


def _check_embeddings(x: np.ndarray, y: np.ndarray, *, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    for name, arr in (("x", x), ("y", y)):
        if arr.ndim != 2 or arr.shape[1] == 0:
            raise ValueError(f"{name} must be a 2-D [n_samples, n_features] array, got shape {arr.shape}")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}; both must embed the same samples, same order")
    if len(x) < min_samples:
        raise ValueError(f"need at least {min_samples} samples, got {len(x)}")
    return x, y


# ---------------------------------------------------------------------------------------------
# CKA


class _Gram(NamedTuple):
    """What CKA needs of one representation Z (centred, float64 [n, d]); K = Z Z^T is never formed."""

    z: np.ndarray
    diag: np.ndarray  # [n] K_ii = ||z_i||^2
    offdiag_rows: np.ndarray  # [n] row sums of K~ (K with zeroed diagonal) = Z (Z^T 1) - diag
    offdiag_sum: np.float64  # 1^T K~ 1
    norm: np.float64  # ||Z^T Z||_F = sqrt(tr(K K))
    hsic1: np.float64  # HSIC_1(K, K)


def _hsic1(cross: np.float64, a: _Gram, b: _Gram, perm: np.ndarray | None = None) -> np.float64:
    """HSIC_1(K, L) from cross = ||Z_a^T Z_b||_F^2 = tr(K L) (algebra in linear_cka_debiased); ``perm``
    reorders b's rows, as when cross was computed with Z_b[perm]."""
    n = np.float64(len(a.diag))  # numpy arithmetic: n < 4 gives inf/nan, not ZeroDivisionError
    diag_b = b.diag if perm is None else b.diag[perm]
    rows_b = b.offdiag_rows if perm is None else b.offdiag_rows[perm]
    trace = cross - a.diag @ diag_b
    cross_sums = a.offdiag_sum * b.offdiag_sum / ((n - 1) * (n - 2))
    return (trace + cross_sums - 2 / (n - 2) * (a.offdiag_rows @ rows_b)) / (n * (n - 3))


def _gram(x: np.ndarray) -> _Gram:
    z = np.asarray(x, np.float64)
    z = z - z.mean(0)
    diag = np.einsum("ij,ij->i", z, z)
    rows = z @ z.sum(0) - diag
    norm = np.linalg.norm(z.T @ z)
    partial = _Gram(z, diag, rows, rows.sum(), norm, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return partial._replace(hsic1=_hsic1(norm**2, partial, partial))


def _cka_pair(a: _Gram, b: _Gram, perm: np.ndarray | None = None) -> tuple[float, float]:
    """(linear CKA, debiased linear CKA) of a and b, b's rows reordered by ``perm``: one [d_a, d_b] product."""
    zb = b.z if perm is None else b.z[perm]
    cross = np.linalg.norm(zb.T @ a.z) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(cross / (a.norm * b.norm)), float(_hsic1(cross, a, b, perm) / np.sqrt(a.hsic1 * b.hsic1))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) in its feature-space form.

        CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F),  X, Y centred column-wise,

    equal to HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with K = X X^T, L = Y Y^T, at O(n d1 d2) cost.

    Args:
        x: float [n_samples, d1]; y: float [n_samples, d2]; rows are the same samples.

    Returns:
        CKA in [0, 1]; nan when a representation is constant across samples.
    """
    x, y = _check_embeddings(x, y, min_samples=2)
    return _cka_pair(_gram(x), _gram(y))[0]


def linear_cka_debiased(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased linear CKA: CKA_d = HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L)), no [n, n] matrix.

    HSIC_1 is the unbiased estimator of Song et al. 2012 (science.md section 5),
        HSIC_1(K, L) = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1)/((n-1)(n-2)) - (2/(n-2)) 1^T K~ L~ 1] / (n(n-3)),
    with K = X X^T, L = Y Y^T and K~ the Gram matrix with its diagonal zeroed. Writing k_i = ||x_i||^2 for
    the diagonal and s_x = X^T 1 for the column sums (l, s_y for Y), every term reduces to feature space:
        tr(K~ L~)   = sum_{i != j} K_ij L_ij = ||X^T Y||_F^2 - sum_i k_i l_i
        1^T K~ 1    = 1^T X X^T 1 - sum_i k_i = ||s_x||^2 - sum_i k_i
        1^T K~ L~ 1 = (K~ 1)^T (L~ 1),  with K~ 1 = X s_x - k and L~ 1 = Y s_y - l
    so the cost is O(n d1 d2 + n d1^2 + n d2^2). HSIC_1 of linear kernels is invariant to translating
    the features; they are centred first only for numerical accuracy (then s_x, s_y vanish).

    Args:
        x: float [n_samples, d1]; y: float [n_samples, d2]; rows are the same samples; n_samples >= 4.

    Returns:
        Debiased CKA (can be slightly negative for unrelated representations); nan when a
        representation's HSIC_1 is not positive (e.g. constant features).
    """
    x, y = _check_embeddings(x, y, min_samples=4)
    return _cka_pair(_gram(x), _gram(y))[1]


# ---------------------------------------------------------------------------------------------
# mutual k-NN


def knn_ids(x: np.ndarray, *, k: int) -> np.ndarray:
    """The ``k`` nearest other samples of each row of ``x`` [n, d] by cosine similarity: int64 [n, k].

    Found with ``zooscope.knn.search`` (FAISS, GPU when present, blocked so no [n, n] matrix is held).
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
    x, y = _check_embeddings(x, y, min_samples=2)
    if not 1 <= k < len(x):
        raise ValueError(f"k must be between 1 and n_samples - 1 = {len(x) - 1}, got {k}")
    return _shared_fraction(knn_ids(x, k=k), knn_ids(y, k=k))


# ---------------------------------------------------------------------------------------------
# permutation nulls


def _permutations(n: int, *, n_perm: int, seed: int) -> Iterator[np.ndarray]:
    """The shuffles every null draws: ``n_perm`` calls of ``default_rng(seed).permutation(n)``."""
    if n_perm < 1:
        raise ValueError(f"n_perm must be positive, got {n_perm}")
    rng = np.random.default_rng(seed)
    for _ in range(n_perm):
        yield rng.permutation(n)


def _summary(null: list[float], score: float) -> tuple[float, float, float]:
    """(null mean, null standard deviation (ddof=1; 0 for one draw), score - null mean)."""
    values = np.asarray(null)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return float(values.mean()), std, float(score - values.mean())


def permutation_null(
    score_fn: Callable[[np.ndarray, np.ndarray], float],
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_perm: int = 20,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Calibrate a similarity score against chance by shuffling the sample order of ``y``.

    Raw CKA and k-NN scores grow with width and sample count even for unrelated representations;
    the null mean measures that floor (science.md section 5 asks for >= 20 permutations).

    Args:
        score_fn: ``(x, y) -> float``, e.g. :func:`linear_cka` or ``functools.partial(mutual_knn, k=10)``.
        x: [n_samples, d1]; y: [n_samples, d2]; rows are the same samples.
        n_perm: number of shuffles of y's rows.
        seed: seed of ``numpy.random.default_rng`` drawing the permutations.

    Returns:
        (null mean, null standard deviation (ddof=1; 0 when n_perm == 1), score_fn(x, y) - null mean).
    """
    x, y = _check_embeddings(x, y, min_samples=2)
    null = [score_fn(x, y[perm]) for perm in _permutations(len(y), n_perm=n_perm, seed=seed)]
    return _summary(null, score_fn(x, y))


def _named(name: str, score: float, null: list[float]) -> dict[str, float]:
    mean, std, corrected = _summary(null, score)
    return {name: score, f"{name}_null": mean, f"{name}_null_std": std, f"{name}_corrected": corrected}


def cka_scores(x: np.ndarray, y: np.ndarray, *, n_perm: int = 20, seed: int = 0) -> dict[str, float]:
    """Linear and debiased linear CKA of x [n, d1] and y [n, d2], each with its permutation null.

    The nulls are those of ``permutation_null(linear_cka, x, y, n_perm=n_perm, seed=seed)`` (and of
    ``linear_cka_debiased``), equal up to rounding, at one [d1, d2] product per permutation.

    Returns:
        ``cka``, ``cka_null``, ``cka_null_std``, ``cka_corrected`` (score - null mean) and the same four
        for ``cka_debiased``.
    """
    x, y = _check_embeddings(x, y, min_samples=4)
    gx, gy = _gram(x), _gram(y)
    null = [_cka_pair(gx, gy, perm) for perm in _permutations(len(y), n_perm=n_perm, seed=seed)]
    cka, debiased = _cka_pair(gx, gy)
    return _named("cka", cka, [v[0] for v in null]) | _named("cka_debiased", debiased, [v[1] for v in null])


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
    for perm in _permutations(len(ids_y), n_perm=n_perm, seed=seed):
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        null.append(_shared_fraction(ids_x, inverse[ids_y[perm]]))
    return _named("mutual_knn", _shared_fraction(ids_x, ids_y), null)
