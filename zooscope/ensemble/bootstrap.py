"""Seeded bootstrap resamples as weight matrices, shared by every pair of a zoo (docs/science.md section 2).

A resample draws ``n`` of the ``n`` samples with replacement; its weight row counts how often each sample
was drawn. Any count statistic of a resample is then a weighted sum, ``weights @ indicators``, so one
matrix product gives a statistic for all resamples and many pairs at once. Every pair is resampled with
the same rows (common random numbers), so the bootstrap of a mean over pairs, or of a difference between
two groups of pairs, is the same product followed by an average.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bootstrap_weights", "resampled_counts", "interval95", "model_resample_weights"]


def bootstrap_weights(n: int, *, n_boot: int, seed: int = 0, block: int = 64) -> np.ndarray:
    """How often each sample appears in each resample: uint8 [n_boot, n], every row summing to ``n``.

    The indices are drawn ``block`` resamples at a time as
    ``numpy.random.default_rng(seed).integers(0, n, size=(block, n))``, so the same (n, n_boot, seed, block)
    always give the same resamples. A count cannot exceed 255 when n <= 255; above that it would take one
    sample drawn 256 times among n uniform draws, a probability below 1e-500, so uint8 holds every count.
    """
    if n < 1 or n_boot < 1 or block < 1:
        raise ValueError(f"n ({n}), n_boot ({n_boot}) and block ({block}) must be positive")
    rng = np.random.default_rng(seed)
    weights = np.empty((n_boot, n), np.uint8)
    for start in range(0, n_boot, block):
        rows = min(block, n_boot - start)
        idx = rng.integers(0, n, size=(rows, n))
        counts = np.bincount((np.arange(rows)[:, None] * n + idx).ravel(), minlength=rows * n)
        weights[start:start + rows] = counts.reshape(rows, n)
    return weights


def resampled_counts(weights: np.ndarray, indicators: np.ndarray, *, block: int = 64) -> np.ndarray:
    """Per resample, how many drawn samples have each indicator set: float64 [n_boot, k], exact integers.

    Args:
        weights: uint8 [n_boot, n] from :func:`bootstrap_weights`, or a column slice [n_boot, s] of it
            (then the counts cover those samples only, and slices add up).
        indicators: bool (or 0/1) [n, k] (or [s, k]).
        block: resamples multiplied per step; memory O(block * n).

    The product runs in float32 when every partial sum is below 2**24 (so it stays an exact integer),
    in float64 otherwise.
    """
    weights, indicators = np.asarray(weights), np.asarray(indicators)
    if weights.ndim != 2 or indicators.ndim != 2 or weights.shape[1] != indicators.shape[0]:
        raise ValueError(f"weights [n_boot, n] and indicators [n, k] do not fit: {weights.shape} and {indicators.shape}")
    dtype = np.float32 if weights.shape[1] * 255 < 2**24 else np.float64
    ind = indicators.astype(dtype)
    out = np.empty((len(weights), ind.shape[1]))
    for start in range(0, len(weights), block):
        out[start:start + block] = weights[start:start + block].astype(dtype) @ ind
    return out


def interval95(draws: np.ndarray, *, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """The 2.5 and 97.5 percentiles of bootstrap ``draws`` along ``axis``: a 95% percentile interval."""
    lo, hi = np.percentile(draws, [2.5, 97.5], axis=axis)
    return lo, hi


def model_resample_weights(model_a: np.ndarray, model_b: np.ndarray, n_models: int, *, n_boot: int,
                           seed: int = 0) -> np.ndarray:
    """How often each pair appears when the zoo's models are resampled: float64 [n_boot, n_pairs].

    Resample r draws ``n_models`` of the models with replacement (``numpy.random.default_rng((seed, 1))``,
    stream 1 of the seed; the images use ``default_rng(seed)``); the pairs of the resampled zoo are the pairs
    of two draws of different models, so pair (a, b) appears count_r(a) * count_r(b) times (the vertex
    bootstrap of dyadic data: pairs that share a model are resampled together, as they should be, since
    they are not independent).

    Args:
        model_a, model_b: int [n_pairs], the two models of each pair (indices below ``n_models``).
    """
    model_a, model_b = np.asarray(model_a, np.int64), np.asarray(model_b, np.int64)
    if n_models < 2 or n_boot < 1 or model_a.shape != model_b.shape or model_a.ndim != 1:
        raise ValueError(f"need >= 2 models, n_boot >= 1 and two [n_pairs] index arrays; got {n_models}, {n_boot}, "
                         f"{model_a.shape} and {model_b.shape}")
    rng = np.random.default_rng((seed, 1))
    drawn = rng.integers(0, n_models, size=(n_boot, n_models))
    counts = np.stack([np.bincount(row, minlength=n_models) for row in drawn]).astype(np.float64)
    return counts[:, model_a] * counts[:, model_b]
