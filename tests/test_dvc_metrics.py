"""What `dvc metrics show` prints is a table: every DVC metric of dvc.yaml is a flat file of numbers (per model, per
category), and the per-category files are exactly the methodology categories."""

from __future__ import annotations

import yaml

from tests.conftest import REPO
from zooscope.ensemble import CATEGORY_METRIC_KEYS, category_metrics
from zooscope.vocab import CATEGORIES


def _metric_paths() -> list[str]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return [next(iter(entry)) if isinstance(entry, dict) else entry
            for stage in stages.values() for entry in stage.get("do", stage).get("metrics", [])]


def test_the_dvc_metrics_are_the_model_and_category_files():
    assert _metric_paths() == ["metrics/models/${key}.json", *(f"metrics/categories/{c}.json" for c in CATEGORIES)]


def test_category_metrics_are_flat_numbers_for_every_category():
    """A category of the zoo gets its numbers (over all pairs); one the zoo lacks, 0 pairs and nulls."""
    entry = {key: 0.5 for key in CATEGORY_METRIC_KEYS} | {"pairs": 3, "cka_debiased": 0.9, "models": 2}
    rows = category_metrics({"reinit": entry})
    assert list(rows) == list(CATEGORIES) and rows["reinit"] == {key: entry[key] for key in CATEGORY_METRIC_KEYS}
    assert rows["dataset"] == {key: 0 if key == "pairs" else None for key in CATEGORY_METRIC_KEYS}
    assert len(CATEGORY_METRIC_KEYS) == 11  # `dvc metrics show` of the default study stays within 250 columns
