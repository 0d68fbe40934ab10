"""What the ensemble stage writes, in one call: the pair table (agreement, ensembles and the similarity
stage's columns), the per-class and per-group tables, the subgroups table (``zooscope.ensemble.groups``: each model
per group of classes and per class), ``metrics/study.json`` (the headline), and the data of its DVC plots.

What is chosen (the greedy ensemble's members, the best partner of the strongest models, and in the report
the most complementary pair) is chosen on the calibration split and reported on eval.

Per-pair ensemble counts come from the per-pair cache (``zooscope.paircache``), so only pairs whose
probability files changed are computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from zooscope.artifacts import Predictions, read_cards, read_predictions, read_top5, unordered_pairs
from zooscope.config import Study, compression_roots, lint_zoo, teacher_of, trained_apart
from zooscope.ensemble.agreement import image_split
from zooscope.ensemble.greedy import ensemble_curve, greedy_ensemble
from zooscope.ensemble.groups import subgroup_tables
from zooscope.ensemble.categories import category_tables, format_categories, pairs_table, plot_frames, study_metrics
from zooscope.ensemble.pairs import calibration_columns, ensemble_keys, ensemble_rows, ensemble_table, group_table
from zooscope.ensemble.partners import PartnerChoice, ordered_partners, partner_choice
from zooscope.paircache import cached_pairs

__all__ = ["ENSEMBLE_CACHE", "EnsembleTables", "ensemble_tables"]

#: The per-pair cache's file in the stage's cache folder.
ENSEMBLE_CACHE = "ensemble.parquet"


@dataclass(frozen=True)
class EnsembleTables:
    """The ensemble stage's outputs.

    Attributes:
        pairs: ``artifacts/pairs.parquet``, one row per unordered pair (``categories.PAIRS_COLUMNS`` first).
        per_class: ``artifacts/pairs_per_class.parquet``, one row per (pair, class).
        per_group: ``artifacts/pairs_per_group.parquet``, one row per (pair, group of ``ensemble.class_groups``).
        groups: ``artifacts/groups.parquet``, one row per (model, group or single class): accuracy, the gap to the
            base, student vs teacher (``zooscope.ensemble.groups``).
        metrics: ``metrics/study.json``.
        plots: plot name (kappa_by_category, gain_vs_kappa, greedy_curve, partner_gain, subgroup_gap) -> its data.
        categories: the category tables as text (what the stage prints); computed: pairs computed this run.
    """

    pairs: pl.DataFrame
    per_class: pl.DataFrame
    per_group: pl.DataFrame
    groups: pl.DataFrame
    metrics: dict[str, Any]
    plots: dict[str, pl.DataFrame]
    categories: str
    computed: int


def _group_summary(frame: pl.DataFrame, per_group: pl.DataFrame, groups: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """``metrics/study.json``'s class_groups: the groups, and per category the share of pairs whose members each win
    at least one group (they specialise: each is the better one somewhere)."""
    wins = per_group.group_by("model_a", "model_b").agg(
        a=(pl.col("winner") == pl.col("model_a")).any(), b=(pl.col("winner") == pl.col("model_b")).any())
    split = frame.select("model_a", "model_b", "category").join(wins, on=["model_a", "model_b"], how="left")
    share = split.group_by("category").agg(specialised=(pl.col("a") & pl.col("b")).mean(), pairs=pl.len())
    return {"groups": {name: list(classes) for name, classes in groups.items()},
            "specialised_pairs": {r["category"]: r["specialised"] for r in share.sort("category").iter_rows(named=True)}}


def _partners(frame: pl.DataFrame, preds: Predictions, predictions: str | Path, ids: list[str],
              designed: list[str]) -> tuple[PartnerChoice, dict[str, pl.Series]]:
    """Partner choice without labels (``zooscope.ensemble.partners``) from the pair table's label-free columns and
    each model's eval top-5 classes and mean max-probability (no eval label read), over the models trained apart: a
    compressed model (a key of ``roots``) is nearly a copy of its parent, and its pairs would fit and score the
    easiest rankings (``designed``: :func:`zooscope.config.trained_apart`). Returns the choice and its columns over
    every pair of ``frame`` (null for the others')."""
    index = {mid: m for m, mid in enumerate(designed)}
    keep = frame["model_a"].is_in(designed) & frame["model_b"].is_in(designed)
    kept = frame.filter(keep)
    rows = [ids.index(mid) for mid in designed]
    confidence = np.array([np.load(preds.probs[r], mmap_mode="r").max(1).mean(dtype=np.float64) for r in rows])
    choice = partner_choice(designed, np.array([(index[a], index[b]) for a, b in kept.select("model_a", "model_b").rows()]),
                            {c: kept[c].to_numpy() for c in ("disagreement", "cka_debiased", "mutual_knn", "gain")},
                            top=read_top5(predictions, designed), confidence=confidence)
    where = np.flatnonzero(keep.to_numpy())
    columns = {}
    for name, values in choice.columns.items():
        full = np.full(len(frame), np.nan)
        full[where] = values
        columns[name] = pl.Series(name, full).fill_nan(None)
    return choice, columns


def ensemble_tables(study: Study, *, models: str | Path, predictions: str | Path, similarity: pl.DataFrame,
                    cache: str | Path, progress: bool = True) -> EnsembleTables:
    """Agreement and two-model ensembles of every pair of the study's zoo, and the headline tables.

    Args:
        study: the study (models in order, ``ensemble`` settings).
        models: folder of ``<id>/card.json``; predictions: folder of ``<id>/eval.parquet`` and ``eval_probs.npy``.
        similarity: the similarity stage's per-pair table.
        cache: folder of the per-pair cache (kept between runs).
    """
    settings, ids = study.ensemble, list(study.models)
    pairs = unordered_pairs(ids)
    preds = read_predictions(predictions, ids)
    calibration = read_predictions(predictions, ids, split="calibration")
    boot = {"n_boot": settings.n_boot, "seed": settings.seed}
    rows, computed = cached_pairs(Path(cache) / ENSEMBLE_CACHE, ensemble_keys(preds, pairs, **boot),
                                  lambda todo: ensemble_rows(preds, todo, **boot), desc="pair ensembles",
                                  progress=progress)
    table = ensemble_table(preds, read_cards(models, ids), pairs, rows, roots=compression_roots(study.models),
                           matched_band=settings.matched_band, **boot)
    chosen_on = calibration_columns(calibration, pairs)
    frame = pairs_table(table.frame.join(chosen_on, on=["model_a", "model_b"], how="left", maintain_order="left"),
                        similarity)
    partners, partner_columns = _partners(frame, preds, predictions, ids, trained_apart(study.models))
    frame = frame.with_columns(**partner_columns)
    size = min(settings.greedy_max_size, len(ids))
    order = greedy_ensemble(lambda m: np.load(calibration.probs[m], mmap_mode="r"), calibration.labels, max_size=size,
                            n_models=len(ids))["order"]
    greedy = {"order": order, "accuracy": ensemble_curve(lambda m: np.load(preds.probs[m], mmap_mode="r"), preds.labels,
                                                         order)}
    tables = category_tables(frame, table.draws, table.zoo)
    num_classes = int(np.load(preds.probs[0], mmap_mode="r").shape[1])
    split = image_split(preds.correct, preds.labels, num_classes=num_classes)
    metrics = study_metrics(frame, table.draws, table.zoo, tables, table.per_class, greedy, ids,
                            matched_band=settings.matched_band, n_boot=settings.n_boot, strongest=settings.strongest,
                            lint=[w.message for w in lint_zoo(study)])
    metrics["partners"] = partners.metrics
    metrics["image_split"] = {kind: int(per_class.sum()) for kind, per_class in split.items()} | {
        "per_class": {str(c): {kind: int(split[kind][c]) for kind in split} for c in range(len(split["trivial"]))}}
    per_group = group_table(table.per_class, settings.class_groups)
    if len(per_group):
        metrics["class_groups"] = _group_summary(frame, per_group, settings.class_groups)
    groups, metrics["subgroups"], gap_plot = subgroup_tables(
        preds.correct, preds.labels, models=ids, base=study.base, groups=settings.class_groups,
        num_classes=num_classes, teachers=teacher_of(study.models), per_group=per_group, **boot)
    plots = plot_frames(frame, tables, greedy, ids) | {"partner_gain": ordered_partners(frame), "subgroup_gap": gap_plot}
    return EnsembleTables(frame, table.per_class, per_group, groups, metrics, plots, format_categories(tables),
                          computed)
