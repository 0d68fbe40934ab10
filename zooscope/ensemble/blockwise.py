"""Two-model ensembles for many pairs at once, read from memory-mapped probabilities (docs/science.md section 3).

For each requested pair this gives the counts behind ``zooscope.ensemble.agreement.pair_ensemble``,
``class_specialisation`` and ``bootstrap_pair``, with the same numbers, without a Python loop over
samples or resamples and without holding more than one block of samples of the zoo in memory:

- samples are processed in blocks; each model's block is read from its ``.npy`` file (memory-mapped
  only while it is copied, so resident memory stays O(block) however large the zoo and the files);
- per block and model, the true-class probability, the prediction and the strongest *other* class are
  found once; a pair's ensemble is then settled from these for almost every sample, and full rows are
  summed only for the few samples the bounds leave open (``zooscope.ensemble._exact_argmax``), so a pair costs O(n)
  rather than O(n * num_classes);
- bootstrap counts of every pair come from one product per block with the shared resample weights
  (``zooscope.ensemble.bootstrap``), the resamples ``bootstrap_pair`` draws with the same seed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from zooscope._checks import as_labels
from zooscope.ensemble.bootstrap import bootstrap_weights, resampled_counts
from zooscope.ensemble._exact_argmax import Summary, sum_is_label, summarise

__all__ = ["ensemble_pairs"]

Source = np.ndarray | str | os.PathLike


class _Block(NamedTuple):
    """One block of s samples of the k models involved."""

    x: np.ndarray  # [k, s, C] probabilities
    y: np.ndarray  # [s] labels
    summary: Summary  # fields [k, s]


def _open(source: Source) -> np.ndarray:
    return np.load(source, mmap_mode="r") if isinstance(source, (str, os.PathLike)) else np.asarray(source)


def _read_block(sources: Sequence[Source], out: np.ndarray, labels: np.ndarray, start: int) -> _Block:
    """Fill ``out`` [k, s, C] with samples start:start+s of each source and summarise each model."""
    for k, source in enumerate(sources):
        out[k] = _open(source)[start:start + out.shape[1]]
    y = labels[start:start + out.shape[1]]
    return _Block(out, y, summarise(out, y))


def _check(probs: Sequence[Source], labels: np.ndarray, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, np.dtype]:
    """Labels, pairs [P, 2], the number of classes and the dtype blocks are held in, after checking them."""
    labels = as_labels(labels)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if len(pairs) == 0 or pairs.min() < 0 or pairs.max() >= len(probs):
        raise ValueError(f"pairs must be a non-empty [n_pairs, 2] array of indices 0..{len(probs) - 1}")
    arrays = {int(m): _open(probs[m]) for m in np.unique(pairs)}
    shape = next(iter(arrays.values())).shape
    for m, arr in arrays.items():
        if arr.ndim != 2 or arr.shape != shape or shape[0] != len(labels):
            raise ValueError(f"probs[{m}] has shape {arr.shape}; every model needs the same [n_samples={len(labels)}, "
                             "num_classes], rows in the order of labels")
    if labels.max() >= shape[1]:
        raise ValueError(f"labels reach {labels.max()} but the probabilities have {shape[1]} classes")
    return labels, pairs, shape[1], np.result_type(np.float32, *(arr.dtype for arr in arrays.values()))


def ensemble_pairs(
    probs: Sequence[Source],
    labels: np.ndarray,
    pairs: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    block_bytes: int = 1 << 28,
) -> dict[str, np.ndarray]:
    """Ensemble counts of each pair (a, b) of ``pairs``, equal to the per-pair functions' results.

    Args:
        probs: per model, temperature-scaled probabilities [n_samples, num_classes] (float16/32/64): an
            array, or the path of a ``.npy`` file, opened memory-mapped one block of samples at a time.
        labels: int [n_samples], the label of each row.
        pairs: int [n_pairs, 2], indices into ``probs`` (a model may pair with itself).
        n_boot, seed: the bootstrap resamples, ``bootstrap_weights(n_samples, n_boot=n_boot, seed=seed)``
            (those of ``bootstrap_pair`` with the same seed).
        block_bytes: memory for one block of samples of all models in ``pairs``, held as float32 (which
            holds float16 exactly; numpy's argmax is many times faster on it), float64 for float64 inputs.

    Returns:
        Arrays over the P pairs, in the order of ``pairs``:
        ``ens_right``, ``ens_logits_right`` int64 [P]: samples the ensemble of the mean probability
        (``pair_ensemble``'s acc_ensemble * n) and of the mean log-probability get right. The latter is
        the mean of temperature-scaled logits (log p = logit / T - logsumexp, and the per-sample constant
        does not change the argmax), decided as the argmax of p_a * p_b, exact in float64 for float16/32
        probabilities (``pair_ensemble`` with logits log p gives the same up to rounding of exact ties);
        ``ens_converted``, ``ens_logits_converted`` int64 [P]: of those, the samples
        where exactly one member is right; ``class_ens_right`` int64 [P, num_classes]; ``theta_mean``,
        ``theta_std`` float64 [P] of atan2(p_a[y], p_b[y]) (``class_specialisation``);
        ``boot_both_right``, ``boot_ens_right`` int64 [P, n_boot]: samples both members get right and
        the ensemble gets right, under each resample.
    """
    labels, pairs, num_classes, dtype = _check(probs, labels, pairs)
    n, n_pairs = len(labels), len(pairs)
    models = np.unique(pairs)
    local = {int(m): k for k, m in enumerate(models)}
    groups = [(local[int(a)], np.flatnonzero(pairs[:, 0] == a)) for a in np.unique(pairs[:, 0])]
    partner = np.array([local[int(b)] for b in pairs[:, 1]], np.int64)
    weights = bootstrap_weights(n, n_boot=n_boot, seed=seed)

    counts = {f"ens{kind}_{what}": np.zeros(n_pairs, np.int64) for kind in ("", "_logits") for what in ("right", "converted")}
    class_right = np.zeros((n_pairs, num_classes), np.int64)
    theta_sum, theta_sq = np.zeros(n_pairs), np.zeros(n_pairs)  # of theta - pi/4, against cancellation
    boot = np.zeros((n_boot, 2 * n_pairs))
    rows_per_block = max(1, block_bytes // max(1, len(models) * num_classes * np.dtype(dtype).itemsize))
    buffer = np.empty((len(models), min(rows_per_block, n), num_classes), dtype)
    for start in range(0, n, rows_per_block):
        blk = _read_block([probs[m] for m in models], buffer[:, :min(rows_per_block, n - start)], labels, start)
        s = len(blk.y)
        cols = np.arange(s)
        indicators = np.empty((s, 2 * n_pairs), bool)
        for a, rows in groups:
            b = partner[rows]
            sum_a, sum_b = (Summary(*(field[k] for field in blk.summary)) for k in (a, b))
            bounds = {"b_at_a_runner": blk.x[b[:, None], cols, sum_a.runner_class],
                      "a_at_b_runner": blk.x[a][cols, sum_b.runner_class],
                      "full_rows": lambda open_, a=a, b=b: (blk.x[a, open_[1]], blk.x[b[open_[0]], open_[1]])}
            right, right_logits = (sum_is_label(sum_a, sum_b, blk.y, combine=op, **bounds) for op in (np.add, np.multiply))
            one_right = sum_a.correct != sum_b.correct
            for key, r in (("ens", right), ("ens_logits", right_logits)):
                counts[f"{key}_right"][rows] += r.sum(1)
                counts[f"{key}_converted"][rows] += (r & one_right).sum(1)
            flat = (np.arange(len(rows))[:, None] * num_classes + blk.y).ravel()
            class_right[rows] += np.bincount(flat, weights=right.ravel(), minlength=len(rows) * num_classes
                                             ).reshape(len(rows), num_classes).astype(np.int64)
            indicators[:, rows] = (sum_a.correct & sum_b.correct).T
            indicators[:, n_pairs + rows] = right.T
            theta = np.arctan2(np.asarray(sum_a.true, np.float64), sum_b.true) - np.pi / 4
            theta_sum[rows] += theta.sum(1)
            theta_sq[rows] += (theta * theta).sum(1)
        boot += resampled_counts(weights[:, start:start + s], indicators)

    shift = theta_sum / n
    return counts | {
        "class_ens_right": class_right,
        "theta_mean": shift + np.pi / 4,
        "theta_std": np.sqrt(np.maximum(theta_sq / n - shift**2, 0.0)),
        "boot_both_right": boot[:, :n_pairs].T.astype(np.int64),
        "boot_ens_right": boot[:, n_pairs:].T.astype(np.int64),
    }
