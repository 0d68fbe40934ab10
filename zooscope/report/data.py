"""What the report is built from: the study's artifacts, read once into one object the sections share.

This module does all the report's reading; sections open no files. :class:`ReportData` holds the loaded
tables and, in ``artifacts``, the path each came from (named as the sections cite them). A section family
that needs further artifacts adds their reading here, as the mistakes sections do (:class:`MistakesData`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from zooscope.artifacts import (ADVERSARIAL_IMAGES, ATTACK_TABLES, PREDICTIONS, PROBS, Predictions, pair_matrix,
                                read_mistakes, read_predictions)
from zooscope.config import Study
from zooscope.data.datasets import SPLITS
from zooscope.io import read_json
from zooscope.summary import model_table
from zooscope.vocab import group_rank

__all__ = ["ReportData", "MistakesData", "ShiftData", "load_report_data", "load_mistakes", "load_shift", "model_order",
           "heatmap_frame"]


@dataclass(frozen=True)
class MistakesData:
    """The mistakes stage's outputs the report shows.

    Attributes:
        folder: the stage's folder, as given (what sections cite); metrics_path: its metrics file, as given.
        metrics: ``metrics/mistakes.json`` (counts, strongest model, findings, transfer vs kappa).
        tables: name -> table (taxonomy, robustness, consensus, prototypes, prototype_overlap, transfer,
            adversarial; without robustness, transfer and adversarial when the attacks were off).
        adversarial_images: float32 [rows of ``tables["adversarial"]``, C, H, W] in [0, 1]; None when the attacks
            were off.
    """

    folder: str
    metrics_path: str
    metrics: dict[str, Any]
    tables: dict[str, pl.DataFrame]
    adversarial_images: np.ndarray | None

    @property
    def attacks(self) -> bool:
        """Whether the stage ran the attacks (``mistakes.attacks``; the robustness, transfer and adversarial
        outputs exist only then)."""
        return self.metrics.get("attacks", True)

    def source(self, *tables: str) -> tuple[str, ...]:
        """The files of the named tables, as sections cite them."""
        return tuple(f"{self.folder}/{name}.parquet" for name in tables)


#: The mistakes tables the report reads.
_MISTAKES_SHOWN = ("taxonomy", "robustness", "consensus", "prototypes", "prototype_overlap", "transfer", "adversarial")


def load_mistakes(folder: str | Path, metrics_path: str | Path) -> MistakesData:
    """Read the mistakes stage's tables, adversarial images and metrics file (the metrics say whether the attacks
    ran; without them there are no robustness, transfer and adversarial files to read)."""
    metrics = read_json(metrics_path)
    if not metrics.get("attacks", True):
        tables = read_mistakes(folder, [name for name in _MISTAKES_SHOWN if name not in ATTACK_TABLES])
        return MistakesData(str(folder), str(metrics_path), metrics, tables, None)
    tables = read_mistakes(folder, _MISTAKES_SHOWN)
    images = np.load(Path(folder) / ADVERSARIAL_IMAGES)
    if len(images) != len(tables["adversarial"]):
        raise ValueError(f"{folder}: {len(images)} adversarial images for {len(tables['adversarial'])} rows; "
                         "re-run the mistakes stage")
    return MistakesData(str(folder), str(metrics_path), metrics, tables, images)


@dataclass(frozen=True)
class ShiftData:
    """The shift stage's outputs the report shows.

    Attributes:
        table, metrics_path, examples_path: the files, as given (what the section cites).
        models: ``artifacts/shift.parquet`` (per model and set). metrics: ``metrics/shift.json``.
        examples: uint8 [1 + sets, k, H, W(, 3)], the first eval images clean and under each set.
    """

    table: str
    metrics_path: str
    examples_path: str
    models: pl.DataFrame
    metrics: dict[str, Any]
    examples: np.ndarray


def load_shift(table: str | Path, metrics_path: str | Path, examples: str | Path) -> ShiftData:
    """Read the shift stage's per-model table, metrics file and example images."""
    return ShiftData(str(table), str(metrics_path), str(examples), pl.read_parquet(table), read_json(metrics_path),
                     np.load(examples))


@dataclass(frozen=True)
class ReportData:
    """The loaded inputs of the report.

    Attributes:
        study: the validated study.
        models: :func:`zooscope.summary.model_table` (one row per model, category vs the base).
        study_metrics: ``metrics/study.json`` (per-category tables, findings, greedy curve, best partners).
        pairs: ``artifacts/pairs.parquet`` (one row per pair). per_class: ``artifacts/pairs_per_class.parquet``.
        per_group: ``artifacts/pairs_per_group.parquet`` (per pair and group of classes), when given.
        groups: ``artifacts/groups.parquet`` (per model and group of classes or single class: accuracy, the gap to
            the base, a distilled model against its teacher), when given.
        predictions: every model's eval predictions, aligned (pred [n_models, n], labels, sample ids).
        classes: class names, index = label. split_sizes: samples per split.
        images: sample id -> PIL image of that eval sample (None: no thumbnails).
        artifacts: name -> the path each input was read from (what sections cite).
        changes: the comparison with an earlier revision (:class:`zooscope.diff.StudyDiff`), if any.
        mistakes: the mistakes stage's outputs, when the report is built with them.
        mixes: ``artifacts/feature_mixes.parquet`` (probe accuracy per pair and share of features), when given.
        shift: the shift stage's outputs, when the report is built with them.
        compression: the compression stage's table and metrics (``artifacts/compression.parquet``,
            ``metrics/compression.json``), when given.
        reliability: model -> its eval reliability bins (:func:`zooscope.models.calibration.reliability` of the
            temperature-scaled probabilities, ``predict.ece_bins`` bins).
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
    mistakes: MistakesData | None = None
    per_group: pl.DataFrame | None = None
    groups: pl.DataFrame | None = None
    mixes: pl.DataFrame | None = None
    shift: ShiftData | None = None
    compression: tuple[pl.DataFrame, dict[str, Any]] | None = None
    reliability: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def category_of(self) -> dict[str, str]:
        """model id -> its category relative to the base (``base`` for the base itself)."""
        return dict(self.models.select("model", "category").rows())

    def source(self, *names: str) -> tuple[str, ...]:
        """The paths of the named artifacts (for a section's ``sources``)."""
        return tuple(str(self.artifacts.get(n, n)) for n in names)


def model_order(models: pl.DataFrame) -> list[str]:
    """Model ids grouped by their category relative to the base (base first, then reinit ... dataset),
    by name within a group: the order of the heatmaps' rows and columns."""
    rows = sorted(models.select("model", "category").rows(), key=lambda r: (group_rank(r[1]), r[0]))
    return [m for m, _ in rows]


def load_report_data(study: Study, *, model_metrics: str | Path, study_metrics: str | Path, pairs: str | Path,
                     per_class: str | Path, predictions: str | Path, thumbnails: bool = True,
                     changes: Any = None, mistakes: str | Path | None = None,
                     mistakes_metrics: str | Path | None = None, per_group: str | Path | None = None,
                     mixes: str | Path | None = None, groups: str | Path | None = None,
                     subgroup_plot: str | Path | None = None, shift: ShiftData | None = None,
                     compression: str | Path | None = None, compression_metrics: str | Path | None = None) -> ReportData:
    """Read the report's inputs. With ``thumbnails``, the dataset is loaded for its images and class
    names (``zooscope.data.datasets``); otherwise class names are the label numbers. ``mistakes`` (the
    mistakes stage's folder) and ``mistakes_metrics`` (its metrics file) add the mistakes sections; ``per_group`` and
    ``mixes`` (the similarity stage's feature mixes) add their figures; ``groups`` (the ensemble stage's per-model
    group table) adds the subgroups section, whose figure's data file is ``subgroup_plot`` (cited, not read);
    ``shift`` (:func:`load_shift`) the shift section; ``compression`` and ``compression_metrics`` (the compression
    stage's table and metrics file) the compression section."""
    ids = list(study.models)
    preds = read_predictions(predictions, ids)
    classes: tuple[str, ...]
    images = None
    split_sizes = {"eval": len(preds.labels)}
    if thumbnails:
        from zooscope.data.datasets import load_dataset

        dataset = load_dataset(study.dataset)
        classes = dataset.classes
        split_sizes = {s: len(dataset.split(s)) for s in SPLITS}
        position = {int(sid): i for i, sid in enumerate(dataset.sample_ids)}
        images = _Images(dataset, position)
    else:
        classes = tuple(str(c) for c in range(int(preds.labels.max()) + 1))
    artifacts = {"model_metrics": f"{model_metrics}/<model>.json", "study_metrics": str(study_metrics),
                 "pairs": str(pairs), "per_class": str(per_class), "predictions": f"{predictions}/<model>/{PREDICTIONS}",
                 "probs": f"{predictions}/<model>/{PROBS}",
                 "dataset": f"dataset {study.dataset.source}", "mixes": str(mixes), "per_group": str(per_group),
                 "groups": str(groups), "subgroup_plot": str(subgroup_plot), "compression": str(compression)}
    if (mistakes is None) != (mistakes_metrics is None):
        raise ValueError("give both the mistakes folder and its metrics file, or neither")
    if (compression is None) != (compression_metrics is None):
        raise ValueError("give both the compression table and its metrics file, or neither")
    loaded = None
    if mistakes is not None:
        artifacts |= {"mistakes": str(mistakes), "mistakes_metrics": str(mistakes_metrics)}
        loaded = load_mistakes(mistakes, mistakes_metrics)
    from zooscope.models.calibration import reliability

    bins = {mid: reliability(np.load(path), preds.labels, bins=study.predict.ece_bins)
            for mid, path in zip(preds.models, preds.probs)}
    return ReportData(study=study, models=model_table(study, metrics_dir=model_metrics),
                      study_metrics=read_json(study_metrics), pairs=pl.read_parquet(pairs),
                      per_class=pl.read_parquet(per_class), predictions=preds, classes=classes,
                      split_sizes=split_sizes, images=images, artifacts=artifacts, changes=changes,
                      mistakes=loaded, per_group=pl.read_parquet(per_group) if per_group is not None else None,
                      mixes=pl.read_parquet(mixes) if mixes is not None else None, shift=shift, reliability=bins,
                      groups=pl.read_parquet(groups) if groups is not None else None,
                      compression=(pl.read_parquet(compression), read_json(compression_metrics))
                      if compression is not None else None)


@dataclass(frozen=True)
class _Images:
    """Eval images by sample id, read on demand."""

    dataset: Any
    position: Mapping[int, int]

    def __call__(self, sample_id: int):
        return self.dataset.pil(self.position[int(sample_id)])


def heatmap_frame(pairs: pl.DataFrame, order: list[str], column: str) -> pl.DataFrame:
    """A per-pair ``column`` for every ordered pair of models in ``order`` (the diagonal included), as
    ``model_a, model_b, value, statistic``: the data of a DVC heatmap plot."""
    matrix = pair_matrix(pairs, order, column, diagonal=1.0)
    n = len(order)
    return pl.DataFrame({"model_a": [order[i] for i in range(n) for _ in range(n)],
                         "model_b": [order[j] for _ in range(n) for j in range(n)],
                         "value": matrix.ravel(), "statistic": [column] * (n * n)}).fill_nan(None)
