"""One model's eval predictions (science.md section 1): temperature scaling fitted on the calibration split,
the per-sample predictions table, and the model's quality metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from zooscope.models.calibration import ece, fit_temperature, nll, softmax, topk

__all__ = ["ModelPredictions", "predict_eval"]


@dataclass(frozen=True)
class ModelPredictions:
    """What the predict stage writes for one model.

    Attributes:
        table: one row per eval sample: sample_id, label, pred, correct, true_prob, top5 (list of 5 classes).
        probs: float32 [n, C], temperature-scaled softmax probabilities.
        metrics: top1, top5, nll, ece, temperature (plus whatever ``extra`` the caller adds).
    """

    table: pl.DataFrame
    probs: np.ndarray
    metrics: dict[str, Any]


def predict_eval(cal_logits: np.ndarray, cal_labels: np.ndarray, eval_logits: np.ndarray, eval_labels: np.ndarray,
                 sample_ids: np.ndarray, *, ece_bins: int, extra: dict[str, Any] | None = None) -> ModelPredictions:
    """Temperature-scaled predictions of the eval split from a model's logits.

    Args:
        cal_logits: float [n_cal, C], calibration logits (the temperature is fitted on them, Guo et al. 2017);
            cal_labels: int [n_cal].
        eval_logits: float [n, C]; eval_labels: int [n]; sample_ids: int [n], the eval samples' ids.
        ece_bins: equal-width confidence bins of the ECE.
        extra: further metrics to report with these (e.g. the probe stage's accuracies).
    """
    t = fit_temperature(cal_logits, cal_labels)
    probs = softmax(eval_logits, temperature=t)
    top = topk(probs, k=5)
    pred, y = top[:, 0], eval_labels
    table = pl.DataFrame({
        "sample_id": sample_ids, "label": y, "pred": pred, "correct": pred == y,
        "true_prob": probs[np.arange(len(y)), y].astype(np.float32), "top5": top.tolist(),
    }, schema_overrides={"top5": pl.List(pl.Int64)})
    metrics = {
        "top1": float((pred == y).mean()),
        "top5": float((top == y[:, None]).any(1).mean()),
        "nll": nll(eval_logits, y, temperature=t),
        "ece": ece(probs, y, bins=ece_bins),
        "temperature": t,
        **(extra or {}),
    }
    return ModelPredictions(table, probs.astype(np.float32), metrics)
