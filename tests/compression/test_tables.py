"""The compression table's parts against hand-worked examples."""

from __future__ import annotations

import math

import polars as pl
import pytest

from zooscope.compression import PLOT_STATISTICS, describe, plot_frame
from zooscope.compression.tables import _group_drops


def _groups(rows: list[tuple[str, str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"model": pl.String, "kind": pl.String, "group": pl.String, "accuracy": pl.Float64},
                        orient="row")


def test_the_largest_loss_skips_groups_without_images():
    groups = _groups([("p", "class", "class 0", math.nan), ("p", "class", "class 1", 0.80), ("p", "class", "class 2", 0.5),
                      ("c", "class", "class 0", math.nan), ("c", "class", "class 1", 0.76), ("c", "class", "class 2", 0.49),
                      ("p", "group", "low", 0.7), ("c", "group", "low", 0.7)])
    got = _group_drops("c", "p", groups)
    assert got["worst_class"] == "class 1" and got["worst_class_delta"] == pytest.approx(-0.04)
    assert got["worst_group"] == "low" and got["worst_group_delta"] == 0.0
    only_nan = _groups([("p", "class", "class 0", math.nan), ("c", "class", "class 0", math.nan)])
    assert _group_drops("c", "p", only_nan) == {"worst_group": None, "worst_group_delta": None, "worst_class": None,
                                                "worst_class_delta": None}


def test_how_a_model_was_made_and_its_plot_rows():
    row = {"model": "m", "parent": "p", "method": "prune", "bits": 32, "sparsity": 0.9, "finetune_epochs": 1,
           "top1": 0.8, "parent_top1": 0.85, "churn": 0.1, "kappa": 0.7, "shift_top1": None, "parent_shift_top1": None,
           "worst_class_delta": -0.2}
    assert describe(row) == "90% of weights pruned, fine-tuned 1 epoch(s)"
    assert describe(row | {"method": "quantize", "bits": 8}) == "int8"
    frame = plot_frame(pl.DataFrame([row, row | {"model": "q", "method": "quantize", "bits": 8, "sparsity": 0.01,
                                                  "finetune_epochs": 0}]))
    parent = frame.filter(pl.col("method") == "parent")
    # one parent row per statistic however many compressions it has; no row for a statistic that is missing
    assert sorted(parent["statistic"]) == sorted(s for s in PLOT_STATISTICS if s != "shift_top1")
    assert dict(parent.select("statistic", "value").rows()) == {"top1": 0.85, "churn": 0.0, "kappa": 1.0,
                                                                "worst_class_delta": 0.0}
    assert set(frame.filter(pl.col("model") == "m")["method"]) == {"prune+fine-tune"}
