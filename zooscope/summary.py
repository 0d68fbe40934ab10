"""The summary of a study, shared by every place that shows it (the terminal table, the HTML report,
the Prefect flow's artifacts): the per-model metrics with each model's category relative to the base
model, the per-category rows of ``metrics/study.json`` and the finding lines. Data only; rendering lives
with each consumer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from zooscope.artifacts import MODEL_METRICS, read_model_metrics
from zooscope.config import Study, compression_roots
from zooscope.vocab import GROUPS, SUBSETS, group_rank, pair_categories

__all__ = ["model_table", "format_table", "category_rows", "study_facts"]

_METRICS = ("top1", "top5", "nll", "ece", "temperature", "probe_acc", "knn_acc")


def model_table(study: Study, *, metrics_dir: str | Path = MODEL_METRICS) -> pl.DataFrame:
    """One row per model: id, source, category vs base, weak flag, and its metrics (null when not yet computed)."""
    tags = {mid: spec.tags.model_dump() for mid, spec in study.models.items()}
    roots = compression_roots(study.models)
    rows: list[dict[str, Any]] = []
    for mid, spec in study.models.items():
        metrics = read_model_metrics(metrics_dir, mid) or {}
        category = "base" if mid == study.base else pair_categories([(study.base, mid)], tags, roots=roots)[0]
        rows.append({"model": mid, "source": spec.source, "category": category, "weak": spec.weak,
                     **{k: metrics.get(k) for k in _METRICS}})
    schema = {"model": pl.String, "source": pl.String, "category": pl.String, "weak": pl.Boolean,
              **{k: pl.Float64 for k in _METRICS}}
    frame = pl.DataFrame(rows, schema=schema)
    base_top1 = frame.filter(pl.col("model") == study.base)["top1"].item()
    return frame.with_columns((pl.col("top1") - base_top1).alias("vs_base"))


def format_table(frame: pl.DataFrame) -> str:
    """A plain-text table (accuracies in percent) for the terminal."""
    frame = frame.sort(pl.col("category").replace_strict({g: group_rank(g) for g in GROUPS}, default=len(GROUPS)), "model")
    width = max(18, *(len(m) + 7 * bool(w) for m, w in zip(frame["model"], frame["weak"])))
    header = f"{'model':<{width}} {'category':<16} {'top1':>6} {'vs base':>8} {'top5':>6} {'nll':>6} {'ece':>6} {'probe':>6} {'k-NN':>6}  source"
    lines = [header, "-" * len(header)]

    def pct(v: float | None, signed: bool = False) -> str:
        if v is None:
            return "-"
        return f"{100 * v:+.2f}" if signed else f"{100 * v:.2f}"

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    for r in frame.iter_rows(named=True):
        name = r["model"] + (" (weak)" if r["weak"] else "")
        lines.append(
            f"{name:<{width}} {r['category']:<16} {pct(r['top1']):>6} {pct(r['vs_base'], True):>8} {pct(r['top5']):>6} "
            f"{num(r['nll']):>6} {num(r['ece']):>6} {pct(r['probe_acc']):>6} {pct(r['knn_acc']):>6}  {r['source']}"
        )
    return "\n".join(lines)


def category_rows(study_metrics: dict[str, Any], *, subsets: tuple[str, ...] = tuple(SUBSETS)) -> list[dict[str, Any]]:
    """The per-category tables of ``metrics/study.json`` as flat rows: ``subset`` (all | matched),
    ``category``, ``pairs`` and each statistic with its intervals (``_lo`` / ``_hi`` over images, ``_zoo_lo`` /
    ``_zoo_hi`` over models and images), in category order."""
    rows = []
    for subset in subsets:
        table = study_metrics.get(SUBSETS[subset].key) or {}
        for cat in sorted(table, key=group_rank):
            rows.append({"subset": subset, "category": cat, **table[cat]})
    return rows


def study_facts(study: Study, study_metrics: dict[str, Any] | None, *,
                split_sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """The headline facts of a study: dataset, split sizes, zoo size, base, pair counts, the finding in sentences
    (``headline``) and as lines (``findings`` of ``metrics/study.json``; both empty before the ensemble stage has
    run) and the zoo's design warnings that qualify them (``lint``)."""
    metrics = study_metrics or {}
    return {
        "dataset": study.dataset.source, "splits": dict(split_sizes or {}), "models": len(study.models),
        "weak_models": sum(spec.weak for spec in study.models.values()), "base": study.base,
        "pairs": metrics.get("pairs"), "matched_pairs": metrics.get("matched_pairs"),
        "matched_band": metrics.get("matched_band"), "n_boot": metrics.get("n_boot"),
        "headline": [str(h) for h in metrics.get("headline", [])],
        "findings": [str(f) for f in metrics.get("findings", [])],
        "lint": [str(w) for w in metrics.get("lint", [])],
    }
