"""What the report is built from: the study's artifacts, read once into one object the sections share.

Sections never open files themselves through hard-coded paths: :class:`ReportData` holds the loaded
tables and, in ``artifacts``, the path each came from (named as the sections cite them). A later module
whose sections need further artifacts reads them from paths the stage adds to ``artifacts``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from zooscope.config import Study
from zooscope.io import read_json
from zooscope.methodology import CATEGORIES
from zooscope.summary import model_table
from zooscope.zooartifacts import Predictions, read_predictions

__all__ = ["ReportData", "load_report_data", "model_order", "pair_matrix", "heatmap_frame"]


@dataclass(frozen=True)
class ReportData:
    """The loaded inputs of the report.

    Attributes:
        study: the validated study.
        models: :func:`zooscope.summary.model_table` (one row per model, category vs the base).
        study_metrics: ``metrics/study.json`` (per-category tables, findings, greedy curve, best partners).
        pairs: ``artifacts/pairs.parquet`` (one row per pair). per_class: ``artifacts/pairs_per_class.parquet``.
        predictions: every model's eval predictions, aligned (pred [n_models, n], labels, sample ids).
        classes: class names, index = label. split_sizes: samples per split.
        images: sample id -> PIL image of that eval sample (None: no thumbnails).
        artifacts: name -> the path each input was read from (what sections cite).
        changes: the comparison with an earlier revision (:class:`zooscope.diff.StudyDiff`), if any.
    """

    study: Study
    models: pl.DataFrame
    study_metrics: dict[str, Any]
    pairs: pl.DataFrame
    per_class: pl.DataFrame
    predictions: Predictions
    classes: tuple[str, ...]
    split_sizes: dict[str, int]
    images: Any = None
    artifacts: Mapping[str, str] = field(default_factory=dict)
    changes: Any = None

    def source(self, *names: str) -> tuple[str, ...]:
        """The paths of the named artifacts (for a section's ``sources``)."""
        return tuple(str(self.artifacts.get(n, n)) for n in names)


def model_order(models: pl.DataFrame) -> list[str]:
    """Model ids grouped by their category relative to the base (base first, then reinit ... dataset),
    by name within a group: the order of the heatmaps' rows and columns."""
    rank = {"base": -1, **{c: i for i, c in enumerate(CATEGORIES)}}
    rows = sorted(models.select("model", "category").rows(), key=lambda r: (rank.get(r[1], 99), r[0]))
    return [m for m, _ in rows]


def load_report_data(study: Study, *, model_metrics: str | Path, study_metrics: str | Path, pairs: str | Path,
                     per_class: str | Path, predictions: str | Path, thumbnails: bool = True,
                     changes: Any = None, mistakes: str | Path | None = None,
                     mistakes_metrics: str | Path | None = None) -> ReportData:
    """Read the report's inputs. With ``thumbnails``, the dataset is loaded for its images and class
    names (``zooscope.data.datasets``); otherwise class names are the label numbers. ``mistakes`` (the
    mistakes stage's folder) and ``mistakes_metrics`` (its metrics file) add the mistakes sections."""
    ids = list(study.models)
    preds = read_predictions(predictions, ids)
    classes: tuple[str, ...]
    images = None
    split_sizes = {"eval": len(preds.labels)}
    if thumbnails:
        from zooscope.data.datasets import load_dataset

        dataset = load_dataset(study.dataset)
        classes = dataset.classes
        split_sizes = {s: len(dataset.split(s)) for s in ("train", "calibration", "eval")}
        position = {int(sid): i for i, sid in enumerate(dataset.sample_ids)}
        images = _Images(dataset, position)
    else:
        classes = tuple(str(c) for c in range(int(preds.labels.max()) + 1))
    artifacts = {"model_metrics": f"{model_metrics}/<model>.json", "study_metrics": str(study_metrics),
                 "pairs": str(pairs), "per_class": str(per_class), "predictions": f"{predictions}/<model>/eval.parquet",
                 "dataset": f"dataset {study.dataset.source}"}
    if (mistakes is None) != (mistakes_metrics is None):
        raise ValueError("give both the mistakes folder and its metrics file, or neither")
    if mistakes is not None:
        artifacts |= {"mistakes": str(mistakes), "mistakes_metrics": str(mistakes_metrics)}
    return ReportData(study=study, models=model_table(study, metrics_dir=model_metrics),
                      study_metrics=read_json(study_metrics), pairs=pl.read_parquet(pairs),
                      per_class=pl.read_parquet(per_class), predictions=preds, classes=classes,
                      split_sizes=split_sizes, images=images, artifacts=artifacts, changes=changes)


@dataclass(frozen=True)
class _Images:
    """Eval images by sample id, read on demand."""

    dataset: Any
    position: Mapping[int, int]

    def __call__(self, sample_id: int):
        return self.dataset.pil(self.position[int(sample_id)])


def pair_matrix(pairs: pl.DataFrame, order: list[str], column: str, *, diagonal: float = 1.0) -> np.ndarray:
    """The symmetric [n, n] matrix of a per-pair ``column`` in ``order`` (nan where a pair has no value)."""
    index = {m: i for i, m in enumerate(order)}
    out = np.full((len(order), len(order)), np.nan)
    np.fill_diagonal(out, diagonal)
    for a, b, v in pairs.select("model_a", "model_b", column).rows():
        if a in index and b in index and v is not None:
            out[index[a], index[b]] = out[index[b], index[a]] = v
    return out


def heatmap_frame(pairs: pl.DataFrame, order: list[str], column: str) -> pl.DataFrame:
    """A per-pair ``column`` for every ordered pair of models in ``order`` (the diagonal included), as
    ``model_a, model_b, value, statistic``: the data of a DVC heatmap plot."""
    matrix = pair_matrix(pairs, order, column)
    n = len(order)
    return pl.DataFrame({"model_a": [order[i] for i in range(n) for _ in range(n)],
                         "model_b": [order[j] for _ in range(n) for j in range(n)],
                         "value": matrix.ravel(), "statistic": [column] * (n * n)}).fill_nan(None)
