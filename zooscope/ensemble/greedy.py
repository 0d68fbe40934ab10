"""Which models to ensemble: greedy forward selection over the whole zoo (Caruana et al. 2004), and the
accuracy of a chosen order on another split, so members chosen on calibration are reported on eval."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from zooscope._checks import as_labels, check_scores
from zooscope.ensemble._exact_argmax import sum_is_label, summarise

__all__ = ["greedy_ensemble", "ensemble_curve"]


def greedy_ensemble(
    probs_by_model: Sequence[np.ndarray] | Callable[[int], np.ndarray],
    labels: np.ndarray,
    *,
    max_size: int,
    n_models: int | None = None,
) -> dict[str, np.ndarray]:
    """Forward selection of an ensemble (Caruana et al. 2004), each model used at most once.

    Step k adds the unused model whose inclusion gives the most accurate mean-probability ensemble
    (ties go to the lower index). Each model is read in full once, for its
    :class:`zooscope.ensemble._exact_argmax.Summary`; then a step evaluates a candidate from the running sum of the selected probabilities (float64, in
    memory), n gathered entries of the candidate and the full rows of the few samples the summaries leave
    open (``zooscope.ensemble._exact_argmax``), with the same result as ``(total + probs).argmax(1)``. So
    memory-mapped arrays (``np.load(path, mmap_mode="r")``) or a loader work for zoos that do not fit in
    memory, and a step costs O(n_models * n_samples) rather than O(n_models * n_samples * num_classes).

    Args:
        probs_by_model: a sequence of float [n_samples, num_classes] arrays, or a callable ``i -> array``.
        labels: int [n_samples].
        max_size: ensemble size to grow to (1 <= max_size <= n_models).
        n_models: number of models; required with a callable, must match ``len`` of a sequence.

    Returns:
        ``order`` int64 [max_size] (model indices in the order chosen) and ``accuracy`` float64
        [max_size] (accuracy of the ensemble of the first k+1 chosen models).
    """
    labels = as_labels(labels)
    if callable(probs_by_model):
        if n_models is None:
            raise ValueError("n_models is required when probs_by_model is a loader")
        load = probs_by_model
    else:
        if n_models is not None and n_models != len(probs_by_model):
            raise ValueError(f"n_models={n_models} but probs_by_model holds {len(probs_by_model)} arrays")
        n_models, load = len(probs_by_model), probs_by_model.__getitem__
    if not 1 <= max_size <= n_models:
        raise ValueError(f"max_size must be between 1 and n_models={n_models}, got {max_size}")

    def checked(m: int) -> np.ndarray:
        probs = check_scores(f"probs_by_model[{m}]", load(m), labels)
        if probs.shape != shape:
            raise ValueError(f"probs_by_model[{m}] has shape {probs.shape}, the others {shape}")
        return probs

    shape = check_scores("probs_by_model[0]", load(0), labels).shape
    # summarise writes into its input: give it a float32 (or float64) copy, on which argmax is fast
    summaries = [summarise(np.array(p, np.result_type(p.dtype, np.float32)), labels)
                 for p in map(checked, range(n_models))]
    rows = np.arange(len(labels))
    order = [int(np.argmax([s.correct.mean() for s in summaries]))]  # argmax: ties to the lower index
    accuracy = [summaries[order[0]].correct.mean()]
    total = np.array(checked(order[0]), np.float64)
    while len(order) < max_size:
        chosen = summarise(total, labels)
        best, best_acc = -1, -1.0
        for m in (m for m in range(n_models) if m not in order):
            probs = checked(m)
            right = sum_is_label(chosen, summaries[m], labels, b_at_a_runner=probs[rows, chosen.runner_class],
                                 a_at_b_runner=total[rows, summaries[m].runner_class],
                                 full_rows=lambda open_, probs=probs: (total[open_[0]], probs[open_[0]]))
            if (acc := right.mean()) > best_acc:
                best, best_acc = m, acc
        total += checked(best)
        order.append(best)
        accuracy.append(best_acc)
    return {"order": np.array(order, np.int64), "accuracy": np.array(accuracy, np.float64)}


def ensemble_curve(probs_by_model: Sequence[np.ndarray] | Callable[[int], np.ndarray], labels: np.ndarray,
                   order: Sequence[int]) -> np.ndarray:
    """Accuracy float64 [len(order)] of the mean-probability ensembles of the first 1, 2, ... models of ``order``:
    how an ensemble chosen on one split (:func:`greedy_ensemble` on calibration) does on another (eval).

    The running sum is float64 and ties go to the lower class index, as in :func:`greedy_ensemble`, so on the
    split it was chosen on the curve is ``greedy_ensemble``'s own ``accuracy``.
    """
    labels = as_labels(labels)
    load = probs_by_model if callable(probs_by_model) else probs_by_model.__getitem__
    total, out = None, []
    for m in order:
        probs = np.asarray(check_scores(f"probs_by_model[{m}]", load(int(m)), labels), np.float64)
        total = probs.copy() if total is None else total + probs
        out.append(float((total.argmax(1) == labels).mean()))
    return np.array(out, np.float64)
