"""Permutation nulls: how similar two unrelated representations of the same samples look by chance.

Shuffling the sample order of one side breaks the pairing while keeping each representation as it is;
the mean score over ``n_perm`` shuffles is the floor a raw score is read against (docs/science.md section 5
asks for at least 20). :func:`permutation_null` works for any score; the CKA and mutual k-NN scores of
the pipeline compute the same nulls faster (``zooscope.similarity.cka``, ``.neighbours``), for many pairs at
once with :func:`shuffled_pairs`, which shuffles each model once per permutation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

import numpy as np

from zooscope._checks import check_embeddings

__all__ = ["permutations", "shuffled_pairs", "null_summary", "with_null", "permutation_null"]

T = TypeVar("T")
R = TypeVar("R")


def permutations(n: int, *, n_perm: int, seed: int) -> Iterator[np.ndarray]:
    """The shuffles every null draws: ``n_perm`` calls of ``default_rng(seed).permutation(n)``."""
    if n_perm < 1:
        raise ValueError(f"n_perm must be positive, got {n_perm}")
    rng = np.random.default_rng(seed)
    for _ in range(n_perm):
        yield rng.permutation(n)


def shuffled_pairs(items: Sequence[T] | Mapping[int, T], pairs: Sequence[tuple[int, int]], *, score: Callable[[T, T], R],
                   shuffle: Callable[[T, np.ndarray], T], n_samples: int, n_perm: int, seed: int) -> list[list[R]]:
    """The null draws of many pairs at once: for each pair (i, j) of indices into ``items``, in order,
    ``score(items[i], shuffle(items[j], perm))`` for each shuffle ``perm`` of :func:`permutations`.

    Each item is shuffled once per permutation for all the pairs it is the second of, not once per pair.

    Args:
        items: per model (a sequence, or a mapping from the pairs' indices), whatever ``score`` reads (an
            embedding, neighbour lists) of the same ``n_samples``.
        shuffle: ``(item, perm int [n_samples]) -> the item with its samples in the order perm``.

    Returns:
        Per pair, the ``n_perm`` scores in the order of the permutations.
    """
    draws: list[list[R]] = [[] for _ in pairs]
    seconds: dict[int, list[int]] = {}
    for p, (_, j) in enumerate(pairs):
        seconds.setdefault(j, []).append(p)
    for perm in permutations(n_samples, n_perm=n_perm, seed=seed):
        for j, members in seconds.items():
            shuffled = shuffle(items[j], perm)
            for p in members:
                draws[p].append(score(items[pairs[p][0]], shuffled))
            del shuffled  # before the next model's copy is made
    return draws


def null_summary(null: list[float], score: float) -> tuple[float, float, float]:
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
    the null mean measures that floor (docs/science.md section 5 asks for >= 20 permutations).

    Args:
        score_fn: ``(x, y) -> float``, e.g. :func:`linear_cka` or ``functools.partial(mutual_knn, k=10)``.
        x: [n_samples, d1]; y: [n_samples, d2]; rows are the same samples.
        n_perm: number of shuffles of y's rows.
        seed: seed of ``numpy.random.default_rng`` drawing the permutations.

    Returns:
        (null mean, null standard deviation (ddof=1; 0 when n_perm == 1), score_fn(x, y) - null mean).
    """
    x, y = check_embeddings(x, y, min_samples=2)
    null = shuffled_pairs([x, y], [(0, 1)], score=score_fn, shuffle=lambda a, perm: a[perm], n_samples=len(y),
                          n_perm=n_perm, seed=seed)[0]
    return null_summary(null, score_fn(x, y))


def with_null(name: str, score: float, null: list[float]) -> dict[str, float]:
    """``{name, name_null, name_null_std, name_corrected}``: the score, its null's mean and spread, and the
    score minus the null mean."""
    mean, std, corrected = null_summary(null, score)
    return {name: score, f"{name}_null": mean, f"{name}_null_std": std, f"{name}_corrected": corrected}
