"""Robustness of a zoo across shifted sets (docs/science.md section 9): effective robustness, the distance of a
model's shifted accuracy from the line the zoo draws in probit space (Taori et al., NeurIPS 2020), and the mean
corruption error relative to the base model (Hendrycks & Dietterich, ICLR 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["probit", "effective_robustness", "corruption_errors"]


def probit(acc: np.ndarray, *, n: int) -> np.ndarray:
    """Phi^-1 of accuracies measured on ``n`` samples, clipped to [1/(2n), 1 - 1/(2n)] so 0 and 1 stay finite."""
    from scipy.special import ndtri

    lo = 1.0 / (2 * n)
    return ndtri(np.clip(np.asarray(acc, np.float64), lo, 1 - lo))


def effective_robustness(clean: np.ndarray, shifted: np.ndarray, *, n: int,
                         fit_on: np.ndarray | None = None) -> dict[str, object]:
    """The zoo's line and each model's distance from it on one shift.

    The line is the least-squares fit probit(shifted) = intercept + slope * probit(clean) over the models (those of
    the bool [m] mask ``fit_on`` when given: a compressed model, nearly a copy of its parent, would weigh the parent
    twice); a model's
    effective robustness is its shifted accuracy minus the accuracy the line predicts for its clean accuracy,
    Phi(intercept + slope * probit(clean)), in accuracy units (positive: more robust than its clean accuracy says).

    Args:
        clean, shifted: float [m], each model's accuracy on the clean and the shifted images (``n`` of each).

    Returns:
        slope, intercept (None when fewer than 2 models or all clean accuracies equal), and float64 [m] ``expected``
        and ``effective`` (NaN where the line is undefined).
    """
    from scipy.special import ndtr

    clean, shifted = np.asarray(clean, np.float64), np.asarray(shifted, np.float64)
    if clean.shape != shifted.shape or clean.ndim != 1:
        raise ValueError(f"clean and shifted accuracies must be 1-D of one length, got {clean.shape} and {shifted.shape}")
    x, y = probit(clean, n=n), probit(shifted, n=n)
    fit = np.ones(len(x), bool) if fit_on is None else np.asarray(fit_on, bool)
    if fit.shape != x.shape:
        raise ValueError(f"fit_on must be a mask of the {len(x)} models, got shape {fit.shape}")
    if fit.sum() < 2 or np.ptp(x[fit]) == 0:
        nan = np.full(len(x), np.nan)
        return {"slope": None, "intercept": None, "expected": nan, "effective": nan}
    slope, intercept = np.polyfit(x[fit], y[fit], 1)
    expected = ndtr(intercept + slope * x)
    return {"slope": float(slope), "intercept": float(intercept), "expected": expected, "effective": shifted - expected}


def corruption_errors(errors: np.ndarray, clean_errors: np.ndarray, *, corruptions: Sequence[str],
                      base: int) -> dict[str, np.ndarray]:
    """Corruption errors of every model relative to the base model.

    For corruption c with severities s: CE_c = sum_s E_{c,s} / sum_s E^base_{c,s}, and the relative
    CE_c = sum_s (E_{c,s} - E_clean) / sum_s (E^base_{c,s} - E^base_clean); mCE and relative mCE are their means
    over corruptions. A denominator of 0 (the base makes no error, or none more than on clean images) gives NaN.

    Args:
        errors: float [m, k], top-1 error of each model on each shifted set.
        clean_errors: float [m], top-1 error on the same images uncorrupted.
        corruptions: the corruption of each of the k sets.
        base: the base model's row.

    Returns:
        ``names`` (the corruptions, first-seen order), ``ce`` and ``relative_ce`` float64 [m, n_corruptions],
        ``mce`` and ``relative_mce`` float64 [m].
    """
    errors, clean_errors = np.asarray(errors, np.float64), np.asarray(clean_errors, np.float64)
    if errors.ndim != 2 or errors.shape[1] != len(corruptions) or clean_errors.shape != (errors.shape[0],):
        raise ValueError(f"errors [m, k] with k = {len(corruptions)} corruption labels and clean errors [m] expected, "
                         f"got {errors.shape} and {clean_errors.shape}")
    names = list(dict.fromkeys(corruptions))
    labels = np.asarray(corruptions)
    ce = np.empty((len(errors), len(names)))
    rel = np.empty_like(ce)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, name in enumerate(names):
            cols = labels == name
            total = errors[:, cols].sum(1)
            above = (errors[:, cols] - clean_errors[:, None]).sum(1)
            ce[:, j] = np.where(total[base] > 0, total / total[base], np.nan)
            rel[:, j] = np.where(above[base] > 0, above / above[base], np.nan)
    return {"names": np.asarray(names), "ce": ce, "relative_ce": rel, "mce": ce.mean(1), "relative_mce": rel.mean(1)}
