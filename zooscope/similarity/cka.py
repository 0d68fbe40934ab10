"""Centred kernel alignment of two models' representations of the same samples (docs/science.md section 5).

Both scores take two embeddings of the same ``n`` samples in the same order, ``x`` [n, d1] and ``y``
[n, d2], and work in feature space (O(n d1 d2)), never forming an [n, n] Gram matrix. The permutation
null of :func:`cka_scores` costs one [d1, d2] product per shuffle: everything else is invariant under it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from zooscope._checks import check_embeddings
from zooscope.similarity.nulls import permutations, with_null

__all__ = ["linear_cka", "linear_cka_debiased", "cka_scores"]


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
    x, y = check_embeddings(x, y, min_samples=2)
    return _cka_pair(_gram(x), _gram(y))[0]


def linear_cka_debiased(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased linear CKA: CKA_d = HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L)), no [n, n] matrix.

    HSIC_1 is the unbiased estimator of Song et al. 2012 (docs/science.md section 5),
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
    x, y = check_embeddings(x, y, min_samples=4)
    return _cka_pair(_gram(x), _gram(y))[1]


def cka_scores(x: np.ndarray, y: np.ndarray, *, n_perm: int = 20, seed: int = 0) -> dict[str, float]:
    """Linear and debiased linear CKA of x [n, d1] and y [n, d2], each with its permutation null.

    The nulls are those of ``permutation_null(linear_cka, x, y, n_perm=n_perm, seed=seed)`` (and of
    ``linear_cka_debiased``), equal up to rounding, at one [d1, d2] product per permutation.

    Returns:
        ``cka``, ``cka_null``, ``cka_null_std``, ``cka_corrected`` (score - null mean) and the same four
        for ``cka_debiased``.
    """
    x, y = check_embeddings(x, y, min_samples=4)
    gx, gy = _gram(x), _gram(y)
    null = [_cka_pair(gx, gy, perm) for perm in permutations(len(y), n_perm=n_perm, seed=seed)]
    cka, debiased = _cka_pair(gx, gy)
    return with_null("cka", cka, [v[0] for v in null]) | with_null("cka_debiased", debiased, [v[1] for v in null])
