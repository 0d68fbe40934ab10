"""One model's predictions (docs/science.md section 1): temperature scaling fitted on the calibration split, the
per-sample predictions tables of the calibration and eval splits, and the model's quality metrics (eval)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from zooscope._checks import check_rows
from zooscope.models.calibration import ece, fit_temperature, nll, softmax, topk

__all__ = ["SplitPredictions", "ModelPredictions", "predict_splits"]


@dataclass(frozen=True)
class SplitPredictions:
    """One split's predictions: ``table`` (sample_id, label, pred, correct, true_prob, top5: a list of 5 classes)
    and ``probs`` float32 [n, C], temperature-scaled softmax probabilities."""

    table: pl.DataFrame
    probs: np.ndarray


@dataclass(frozen=True)
class ModelPredictions:
    """What the predict stage writes for one model: ``splits`` (calibration, eval) and ``metrics`` (top1, top5,
    nll, ece and temperature on eval, plus whatever ``extra`` the caller adds: flat numbers, the model's DVC metrics).
    The temperature is None when every calibration row's logits are equal: no T changes them."""

    splits: dict[str, SplitPredictions]
    metrics: dict[str, Any]


def _split(probs: np.ndarray, labels: np.ndarray, sample_ids: np.ndarray) -> tuple[SplitPredictions, np.ndarray]:
    top = topk(probs, k=5)
    pred = top[:, 0]
    table = pl.DataFrame({
        "sample_id": sample_ids, "label": labels, "pred": pred, "correct": pred == labels,
        "true_prob": probs[np.arange(len(labels)), labels].astype(np.float32),
        # from the [n, 5] array itself (a fixed-size column, then a list): a Python list per row took 0.1 s per 10,000
        "top5": pl.Series(top).cast(pl.List(pl.Int64)),
    })
    return SplitPredictions(table, probs.astype(np.float32)), top


def predict_splits(logits: dict[str, np.ndarray], labels: dict[str, np.ndarray], sample_ids: dict[str, np.ndarray], *,
                   ece_bins: int, extra: dict[str, Any] | None = None) -> ModelPredictions:
    """Temperature-scaled predictions of the calibration and eval splits from a model's logits.

    Args:
        logits: split -> float [n_split, C] for ``calibration`` (the temperature is fitted on it, Guo et al. 2017)
            and ``eval``; labels, sample_ids: split -> int [n_split].
        ece_bins: equal-width confidence bins of the ECE.
        extra: further metrics to report with these (e.g. the probe stage's accuracies).
    """
    for split in ("calibration", "eval"):
        check_rows(f"{split} logits", logits[split])
    # logits equal within every row give the uniform distribution at any temperature: T is undefined (missing)
    defined = bool(np.ptp(logits["calibration"], axis=1).max() > 0)
    t = fit_temperature(logits["calibration"], labels["calibration"]) if defined else 1.0
    splits, tops = {}, {}
    for split in ("calibration", "eval"):
        splits[split], tops[split] = _split(softmax(logits[split], temperature=t), labels[split], sample_ids[split])
    y, top = labels["eval"], tops["eval"]
    metrics = {
        "top1": float((top[:, 0] == y).mean()),
        "top5": float((top == y[:, None]).any(1).mean()),
        "nll": nll(logits["eval"], y, temperature=t),
        "ece": ece(softmax(logits["eval"], temperature=t), y, bins=ece_bins),
        "temperature": t if defined else None,
        **(extra or {}),
    }
    return ModelPredictions(splits, metrics)
