"""The checks at the library's public boundary: class labels, correctness indicators, score matrices and
embeddings. Each returns its input as the array the private core trusts, or raises a ``ValueError`` that
names the argument, the shape or values it got and what was expected."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["as_labels", "as_correct", "check_scores", "check_same_shape", "check_embedding", "check_embeddings",
           "check_rows", "check_finite_arrays", "is_constant"]


def as_labels(labels: np.ndarray, *, n: int | None = None, num_classes: int | None = None,
              allow_empty: bool = False) -> np.ndarray:
    """``labels`` as int64 [n] class indices in [0, num_classes).

    Args:
        n: the number of samples the labels must have (None: any).
        num_classes: the exclusive upper bound of a label (None: any non-negative index).
        allow_empty: accept zero labels.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1 or (n is not None and len(arr) != n) or (len(arr) == 0 and not allow_empty):
        want = f"[{n}]" if n is not None else "[n_samples]" + ("" if allow_empty else " with n_samples > 0")
        raise ValueError(f"labels must be a 1-D array of class indices {want}, got shape {arr.shape}")
    if len(arr) == 0:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {arr.dtype}")
    if arr.min() < 0 or (num_classes is not None and arr.max() >= num_classes):
        bound = f"[0, {num_classes})" if num_classes is not None else "[0, inf)"
        raise ValueError(f"labels must be class indices in {bound}, got values in [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64, copy=False)


def as_correct(name: str, correct: np.ndarray, *, ndim: int = 1) -> np.ndarray:
    """``correct`` as a bool array of ``ndim`` dimensions (the last one samples, non-empty); 0/1 integers are accepted."""
    arr = np.asarray(correct)
    if arr.ndim != ndim or arr.shape[-1] == 0:
        raise ValueError(f"{name} must be a non-empty {ndim}-D array of correctness indicators, got shape {arr.shape}")
    if arr.dtype != bool:
        if not (np.issubdtype(arr.dtype, np.number) and np.isin(arr, (0, 1)).all()):
            raise ValueError(f"{name} must be bool or 0/1, got dtype {arr.dtype}")
        arr = arr.astype(bool)
    return arr


def check_scores(name: str, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``scores`` [n, num_classes] aligned with checked ``labels`` [n], wide enough for every label."""
    arr = np.asarray(scores)
    if arr.ndim != 2 or arr.shape[0] != len(labels):
        raise ValueError(f"{name} must be [n_samples={len(labels)}, num_classes], got shape {arr.shape}")
    if len(labels) and labels.max() >= arr.shape[1]:
        raise ValueError(f"labels reach {labels.max()} but {name} has only {arr.shape[1]} classes")
    return arr


def check_same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    """Two per-sample arrays of one pair must cover the same samples in the same order."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} {a.shape} and {name_b} {b.shape} must have the same shape (same samples and order)")


def check_embedding(name: str, x: np.ndarray) -> np.ndarray:
    """One embedding: a 2-D [n_samples, n_features] array with at least one feature."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D [n_samples, n_features] array, got shape {x.shape}")
    return x


def check_embeddings(x: np.ndarray, y: np.ndarray, *, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Two embeddings of the same samples: x [n, d1], y [n, d2], n >= ``min_samples``."""
    x, y = check_embedding("x", x), check_embedding("y", y)
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}; both must embed the same samples, same order")
    if len(x) < min_samples:
        raise ValueError(f"need at least {min_samples} samples, got {len(x)}")
    return x, y


def check_rows(name: str, rows: np.ndarray) -> None:
    """Refuse a [n, d] array of per-sample vectors (embeddings, logits) with NaN, inf or all-zero rows: they have
    no direction and no class, and would turn every score computed from them into a silent wrong number.
    ``name`` says whose rows they are (model and split)."""
    rows = np.asarray(rows)
    bad = ~np.isfinite(rows).all(1) | ~rows.any(1)
    if bad.any():
        first = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(f"{name}: {int(bad.sum())} of {len(rows)} rows hold NaN, inf or only zeros (rows {first}"
                         f"{' ...' if bad.sum() > 5 else ''}); the model's weights or inputs are broken, so no "
                         "number about it would mean anything (check the checkpoint, re-run its fetch stage)")


def check_finite_arrays(name: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Refuse named arrays (a network's weights) that hold NaN or inf, naming ``name``, the arrays and the counts."""
    bad = {key: (int(np.isnan(a).sum()), int(np.isinf(a).sum())) for key, a in arrays.items()
           if np.issubdtype(np.asarray(a).dtype, np.floating) and not np.isfinite(a).all()}
    if bad:
        shown = ", ".join(f"{key} ({nan} NaN, {inf} inf)" for key, (nan, inf) in list(bad.items())[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise ValueError(f"{name}: {len(bad)} of {len(arrays)} arrays hold NaN or inf: {shown}{more}; the checkpoint "
                         "is broken (a diverged training run?), so no number about it would mean anything")


def is_constant(rows: np.ndarray) -> bool:
    """Whether every row of a [n, d] array equals the first (a representation that does not vary across samples)."""
    rows = np.asarray(rows)
    return bool(len(rows) > 1 and (rows == rows[:1]).all())
