"""Centred kernel alignment of two models' representations of the same samples (docs/science.md section 5).

Both scores take two embeddings of the same ``n`` samples in the same order, ``x`` [n, d1] and ``y``
[n, d2], and work in feature space (O(n d1 d2)), never forming an [n, n] Gram matrix. What a score needs of
one representation (:class:`CentredGram`) is computed once per model, however many pairs it is in. The
permutation null of :func:`cka_scores` costs one [d1, d2] product per shuffle: everything else is invariant
under it; :func:`cka_pairs` scores many pairs at once, shuffling each model once per permutation, within a
bounded memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from zooscope._checks import check_embedding, check_embeddings
from zooscope.similarity.nulls import shuffled_pairs, with_null

__all__ = ["CentredGram", "centred_gram", "linear_cka", "linear_cka_debiased", "cka_scores", "cka_pairs"]


class CentredGram(NamedTuple):
    """What CKA needs of one representation Z (centred, float64 [n, d]); K = Z Z^T is never formed."""

    z: np.ndarray
    diag: np.ndarray  # [n] K_ii = ||z_i||^2
    offdiag_rows: np.ndarray  # [n] row sums of K~ (K with zeroed diagonal) = Z (Z^T 1) - diag
    offdiag_sum: np.float64  # 1^T K~ 1
    norm: np.float64  # ||Z^T Z||_F = sqrt(tr(K K))
    hsic1: np.float64  # HSIC_1(K, K)

    def shuffled(self, perm: np.ndarray) -> CentredGram:
        """The same representation with its samples in the order ``perm`` int [n]: the per-sample fields
        reordered (``np.take``, the same rows as ``z[perm]`` in a fraction of the time for float64 rows), the
        sums over samples (``offdiag_sum``, ``norm``, ``hsic1``) as they are."""
        return self._replace(**{f: np.take(getattr(self, f), perm, axis=0) for f in ("z", "diag", "offdiag_rows")})


def _hsic1(cross: np.float64, a: CentredGram, b: CentredGram) -> np.float64:
    """HSIC_1(K, L) from cross = ||Z_a^T Z_b||_F^2 = tr(K L) (algebra in linear_cka_debiased)."""
    n = np.float64(len(a.diag))  # numpy arithmetic: n < 4 gives inf/nan, not ZeroDivisionError
    trace = cross - a.diag @ b.diag
    cross_sums = a.offdiag_sum * b.offdiag_sum / ((n - 1) * (n - 2))
    return (trace + cross_sums - 2 / (n - 2) * (a.offdiag_rows @ b.offdiag_rows)) / (n * (n - 3))


def _centred(x: np.ndarray) -> np.ndarray:
    """``x`` float [n, d] as float64 with each column's mean subtracted: [n, d]."""
    z = np.array(check_embedding("x", x), np.float64)  # a copy, centred in place: one [n, d] array at a time
    z -= z.mean(0)
    return z


def centred_gram(x: np.ndarray) -> CentredGram:
    """What CKA needs of ``x`` float [n, d]: its centred rows and the summaries of their Gram matrix (the fields
    of :class:`CentredGram`), at O(n d^2); ``hsic1`` is nan for n < 4."""
    z = _centred(x)
    diag = np.einsum("ij,ij->i", z, z)
    rows = z @ z.sum(0) - diag
    norm = np.linalg.norm(z.T @ z)
    partial = CentredGram(z, diag, rows, rows.sum(), norm, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return partial._replace(hsic1=_hsic1(norm**2, partial, partial))


def _cka_pair(a: CentredGram, b: CentredGram) -> tuple[float, float]:
    """(linear CKA, debiased linear CKA) of a and b: one [d_a, d_b] product."""
    cross = np.linalg.norm(b.z.T @ a.z) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(cross / (a.norm * b.norm)), float(_hsic1(cross, a, b) / np.sqrt(a.hsic1 * b.hsic1))


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
    return _cka_pair(centred_gram(x), centred_gram(y))[0]


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
    return _cka_pair(centred_gram(x), centred_gram(y))[1]


def cka_scores(x: np.ndarray, y: np.ndarray, *, n_perm: int = 20, seed: int = 0) -> dict[str, float]:
    """Linear and debiased linear CKA of x [n, d1] and y [n, d2], each with its permutation null.

    The nulls are those of ``permutation_null(linear_cka, x, y, n_perm=n_perm, seed=seed)`` (and of
    ``linear_cka_debiased``), equal up to rounding, at one [d1, d2] product per permutation.

    Returns:
        ``cka``, ``cka_null``, ``cka_null_std``, ``cka_corrected`` (score - null mean) and the same four
        for ``cka_debiased``.
    """
    x, y = check_embeddings(x, y, min_samples=4)
    return cka_pairs([x, y], [(0, 1)], n_perm=n_perm, seed=seed)[0]


#: What :func:`cka_pairs` holds of the models' centred rows at once (float64, n x d each, and one shuffled copy),
#: unless a pair alone needs more: 4 GiB is five models of 50,000 x 2,048 (ImageNet's validation set, a ResNet-50),
#: so groups of two.
MAX_ROWS_BYTES = 4 << 30


def cka_pairs(embeddings: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]], *, n_perm: int = 20,
              seed: int = 0, max_bytes: int = MAX_ROWS_BYTES) -> list[dict[str, float]]:
    """:func:`cka_scores` of each pair (i, j) of ``embeddings`` (each model's float [n, d], the same n >= 4
    samples; memory-mapped arrays are read when needed), the same numbers, in the order of ``pairs``.

    What a score needs of a model (:func:`centred_gram`) is computed once per model. The models are taken in
    groups such that two groups' centred rows and one shuffled copy fit in ``max_bytes``; within the two groups of
    a pair, each model is shuffled once per permutation for all the pairs it is the second of. When the whole
    zoo fits, that is one group and every model's rows are centred once; otherwise a model's rows are centred
    again (O(n d)) for each later group it meets, never its Gram summaries (O(n d^2)).

    Returns:
        One dict per pair, in order, with the fields of :func:`cka_scores`.
    """
    shapes = [np.shape(e) for e in embeddings]
    if any(len(shape) != 2 for shape in shapes):
        raise ValueError(f"every embedding must be [n_samples, d]; got shapes {sorted(set(shapes))}")
    sizes = {shape[0] for shape in shapes}
    if len(sizes) != 1 or min(sizes) < 4:
        raise ValueError(f"every embedding must hold the same samples, at least 4; got sample counts {sorted(sizes)}")
    bad = [pair for pair in pairs if not all(0 <= m < len(embeddings) for m in pair)]
    if bad:
        raise ValueError(f"pairs {bad[:3]} name models outside 0..{len(embeddings) - 1}")
    n = sizes.pop()
    used = sorted({m for pair in pairs for m in pair})
    row_bytes = {m: n * shapes[m][1] * 8 for m in used}
    # two groups' rows and one shuffled copy of a model's fit in the budget (a pair spans at most two groups)
    half = (max_bytes - max(row_bytes.values(), default=0)) // 2
    groups: list[list[int]] = []
    for m in used:  # consecutive models
        if groups and sum(row_bytes[g] for g in groups[-1]) + row_bytes[m] <= half:
            groups[-1].append(m)
        else:
            groups.append([m])
    group_of = {m: g for g, members in enumerate(groups) for m in members}
    summaries: dict[int, CentredGram] = {}

    def gram(m: int) -> CentredGram:
        if m in summaries:
            return summaries[m]._replace(z=_centred(embeddings[m]))
        full = centred_gram(embeddings[m])
        summaries[m] = full._replace(z=None)  # the O(n) fields stay, the rows go with their group
        return full

    by_block: dict[tuple[int, int], list[int]] = {}
    for p, (i, j) in enumerate(pairs):
        by_block.setdefault(tuple(sorted((group_of[i], group_of[j]))), []).append(p)
    rows: list[dict[str, float] | None] = [None] * len(pairs)
    grams: dict[int, CentredGram] = {}
    for block, todo in sorted(by_block.items()):  # (a, a), (a, b), (a, c), ...: group a's rows stay between them
        members = [m for g in dict.fromkeys(block) for m in groups[g]]
        grams = {m: g for m, g in grams.items() if m in members}  # the rows leaving go before new ones come
        grams |= {m: gram(m) for m in members if m not in grams}
        null = shuffled_pairs(grams, [pairs[p] for p in todo], score=_cka_pair, shuffle=CentredGram.shuffled,
                              n_samples=n, n_perm=n_perm, seed=seed)
        for p, draws in zip(todo, null, strict=True):
            cka, debiased = _cka_pair(grams[pairs[p][0]], grams[pairs[p][1]])
            rows[p] = (with_null("cka", cka, [v[0] for v in draws])
                       | with_null("cka_debiased", debiased, [v[1] for v in draws]))
    return rows
