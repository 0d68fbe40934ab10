"""What the ``compression`` stage writes: every compressed model (``recipe:prune``, ``recipe:quantize``) against its
parent in the zoo, so a reader sees whether "the same accuracy" meant "the same model".

Per compressed model, on the eval images: its sparsity (counted from its weights at fetch), its accuracy and the
parent's, the difference with a 95% interval, error consistency (kappa) with the parent, churn (the share of images
whose predicted class differs from the parent's, Fort et al.'s "prediction disagreement"; the flips from right to
wrong and from wrong to right apart); on the corrupted sets of ``shift``: the mean accuracy, the parent's, the mean
churn, and its effective robustness against the zoo's line; per group of classes and per class: the largest drop
against the parent. The intervals are over images (a paired bootstrap of the eval images, ``ensemble.n_boot``
resamples, ``ensemble.seed``): they speak for these two networks on other images like these, not for other
compressions of other parents. The rest are point estimates for these models and images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from zooscope.artifacts import WEIGHTS, read_cards, read_predictions, shifted_file
from zooscope.config import Study, compression_parents
from zooscope.ensemble.agreement import disagreement, error_consistency
from zooscope.ensemble.bootstrap import bootstrap_weights, interval95, resampled_counts
from zooscope.io import read_json, tensors_digest

__all__ = ["COMPRESSION_COLUMNS", "PLOT_STATISTICS", "CompressionTables", "compression_tables", "describe", "plot_frame"]

#: The columns of ``artifacts/compression.parquet``, one row per compressed model whose parent is in the zoo.
COMPRESSION_COLUMNS = (
    "model", "parent", "method", "bits", "sparsity", "target_sparsity", "finetune_epochs", "same_parent_weights",
    "top1", "parent_top1", "top1_delta", "top1_delta_lo", "top1_delta_hi", "kappa", "churn", "churn_lo", "churn_hi",
    "right_to_wrong", "wrong_to_right", "shift_top1", "parent_shift_top1", "shift_churn", "effective_robustness",
    "parent_effective_robustness", "worst_group", "worst_group_delta", "worst_class", "worst_class_delta",
)


@dataclass(frozen=True)
class CompressionTables:
    """The stage's outputs: ``table`` (:data:`COMPRESSION_COLUMNS`), ``metrics`` (``metrics/compression.json``: each
    row and the finding) and ``plot`` (``plots/compression.csv``: per model, the parent at sparsity 0 included, the
    statistic against sparsity, long format)."""

    table: pl.DataFrame
    metrics: dict[str, Any]
    plot: pl.DataFrame


#: The statistics of ``plots/compression.csv`` and the report's figure: column -> (the parent's column, or its value
#: against itself: no churn, kappa 1, no class lost).
PLOT_STATISTICS: dict[str, str | float] = {"top1": "parent_top1", "churn": 0.0, "kappa": 1.0,
                                           "shift_top1": "parent_shift_top1", "worst_class_delta": 0.0}


def describe(row: Mapping[str, Any]) -> str:
    """How a compressed model was made, in words: ``int8``, or ``70% of weights pruned, fine-tuned 1 epoch(s)`` (the
    sparsity counted from its weights)."""
    if row["method"] == "quantize":
        return f"int{row['bits']}"
    return f"{100 * row['sparsity']:.0f}% of weights pruned" + (
        f", fine-tuned {row['finetune_epochs']} epoch(s)" if row["finetune_epochs"] else "")


def _paired_intervals(child_right: np.ndarray, parent_right: np.ndarray, flipped: np.ndarray, *, n_boot: int,
                      seed: int) -> dict[str, tuple[float, float]]:
    """95% intervals over images of the accuracy difference and of churn: bool [n] each, resampled together."""
    weights = bootstrap_weights(len(flipped), n_boot=n_boot, seed=seed)
    counts = resampled_counts(weights, np.stack([child_right, parent_right, flipped], 1)) / len(flipped)
    delta, flips = counts[:, 0] - counts[:, 1], counts[:, 2]
    return {key: tuple(float(v) for v in interval95(draws)) for key, draws in (("delta", delta), ("churn", flips))}


def _shift_side(mid: str, parent: str, shift: Mapping[str, Any], shifted: Path) -> dict[str, Any]:
    """Mean accuracy and churn on the corrupted sets, and effective robustness, of a model and its parent."""
    sets, models = shift.get("corrupted_sets", []), shift.get("models", {})
    if not sets or mid not in models or parent not in models:
        return {"shift_top1": None, "parent_shift_top1": None, "shift_churn": None, "effective_robustness": None,
                "parent_effective_robustness": None}
    flips = [disagreement(np.load(shifted_file(shifted / mid, s), mmap_mode="r").argmax(1),
                   np.load(shifted_file(shifted / parent, s), mmap_mode="r").argmax(1)) for s in sets]
    return {"shift_top1": models[mid]["mean_top1"], "parent_shift_top1": models[parent]["mean_top1"],
            "shift_churn": float(np.mean(flips)), "effective_robustness": models[mid]["effective_robustness"],
            "parent_effective_robustness": models[parent]["effective_robustness"]}


def _group_drops(mid: str, parent: str, groups: pl.DataFrame) -> dict[str, Any]:
    """Per kind (a group of classes, a class): the one where the model loses most accuracy against its parent (a
    group without eval images, whose accuracy is NaN, is left out; None where none is left)."""
    accuracy = {(model, kind, group): acc for model, kind, group, acc in
                groups.filter(pl.col("model").is_in([mid, parent])).select("model", "kind", "group", "accuracy").rows()}
    out: dict[str, Any] = {}
    for kind in ("group", "class"):
        deltas = {}
        for (model, k, group), acc in accuracy.items():
            theirs = accuracy.get((parent, k, group))
            if model == mid and k == kind and acc is not None and theirs is not None and np.isfinite(acc - theirs):
                deltas[group] = acc - theirs
        worst = min(deltas, key=lambda g: deltas[g], default=None)
        out[f"worst_{kind}"], out[f"worst_{kind}_delta"] = worst, None if worst is None else float(deltas[worst])
    return out


def _finding(table: pl.DataFrame) -> str:
    if table.is_empty():
        return "No compressed model (recipe:prune, recipe:quantize) with its parent in the zoo."
    parts = []
    for r in table.iter_rows(named=True):
        shift = ("" if r["shift_top1"] is None else
                 f", {100 * (r['shift_top1'] - r['parent_shift_top1']):+.1f} points on the corrupted sets")
        parts.append(f"{r['model']} ({describe(r)}): {100 * r['top1_delta']:+.1f} points "
                     f"of accuracy against {r['parent']}{shift}; {100 * r['churn']:.1f}% of its eval predictions "
                     f"differ from the parent's (kappa {r['kappa']:.2f})")
    return "Compressed against their parents: " + "; ".join(parts) + "."


def plot_frame(table: pl.DataFrame) -> pl.DataFrame:
    """Long format: per compressed model and its parent (at sparsity 0), each statistic of :data:`PLOT_STATISTICS`:
    {parent, model, method (parent, prune, prune+fine-tune, quantize), sparsity, statistic, value}."""
    rows = []
    for r in table.iter_rows(named=True):
        for stat, against in PLOT_STATISTICS.items():
            value, parent_value = r[stat], r[against] if isinstance(against, str) else against
            if value is None:
                continue
            rows.append({"parent": r["parent"], "model": r["parent"], "method": "parent", "sparsity": 0.0,
                         "statistic": stat, "value": parent_value})
            method = "prune+fine-tune" if r["method"] == "prune" and r["finetune_epochs"] else r["method"]
            rows.append({"parent": r["parent"], "model": r["model"], "method": method, "sparsity": r["sparsity"],
                         "statistic": stat, "value": value})
    schema = {"parent": pl.String, "model": pl.String, "method": pl.String, "sparsity": pl.Float64,
              "statistic": pl.String, "value": pl.Float64}
    return pl.DataFrame(rows, schema=schema).unique(maintain_order=True)


def compression_tables(study: Study, *, models: str | Path, predictions: str | Path, shift: Mapping[str, Any],
                       shifted: str | Path, groups: pl.DataFrame) -> CompressionTables:
    """Every compressed model of the study against its parent.

    Args:
        study: the study (its models, ``ensemble.n_boot`` and ``ensemble.seed`` for the intervals).
        models: folder of ``<id>/card.json`` and ``<id>/weights.safetensors``; predictions: the predict stage's folder.
        shift: ``metrics/shift.json``; shifted: the shifted stage's folder (``<id>/<set>.npy``).
        groups: ``artifacts/groups.parquet`` (accuracy per model and group of classes or class).
    """
    from zooscope.zoo.safeload import load_state_dict_file

    parents = compression_parents(study.models)
    rows = []
    if parents:
        ids = list(dict.fromkeys([*parents, *parents.values()]))
        cards, preds = read_cards(models, ids), read_predictions(predictions, ids)
        index = {mid: i for i, mid in enumerate(ids)}
        digests = {p: tensors_digest(load_state_dict_file(Path(models) / p / WEIGHTS)) for p in set(parents.values())}
        for mid, parent in parents.items():
            done = cards[mid]["training"]["compression"]
            same = digests[parent] == cards[mid]["training"]["parent_weights"]
            pred, parent_pred = preds.pred[index[mid]], preds.pred[index[parent]]
            right, parent_right = pred == preds.labels, parent_pred == preds.labels
            ci = _paired_intervals(right, parent_right, pred != parent_pred, n_boot=study.ensemble.n_boot,
                                   seed=study.ensemble.seed)
            rows.append({
                "model": mid, "parent": parent, "method": done["method"], "bits": done["bits"],
                "sparsity": done["sparsity"], "target_sparsity": done.get("target_sparsity"),
                "finetune_epochs": done.get("finetune_epochs", 0), "same_parent_weights": same,
                "top1": float(right.mean()), "parent_top1": float(parent_right.mean()),
                "top1_delta": float(right.mean() - parent_right.mean()), "top1_delta_lo": ci["delta"][0],
                "top1_delta_hi": ci["delta"][1], "kappa": error_consistency(right, parent_right)["kappa"],
                "churn": disagreement(pred, parent_pred), "churn_lo": ci["churn"][0], "churn_hi": ci["churn"][1],
                "right_to_wrong": float((parent_right & ~right).mean()),
                "wrong_to_right": float((~parent_right & right).mean()),
                **_shift_side(mid, parent, shift, Path(shifted)), **_group_drops(mid, parent, groups)})
    schema = {"model": pl.String, "parent": pl.String, "method": pl.String, "bits": pl.Int64, "sparsity": pl.Float64,
              "target_sparsity": pl.Float64, "finetune_epochs": pl.Int64, "same_parent_weights": pl.Boolean,
              "worst_group": pl.String, "worst_class": pl.String}
    table = pl.DataFrame(rows, schema={c: schema.get(c, pl.Float64) for c in COMPRESSION_COLUMNS})
    metrics = {"models": {r["model"]: {k: v for k, v in r.items() if k != "model"} for r in table.iter_rows(named=True)},
               "finding": _finding(table), "n_boot": study.ensemble.n_boot,
               "rebuilt_parent_differs": sorted(table.filter(~pl.col("same_parent_weights"))["model"])}
    return CompressionTables(table, metrics, plot_frame(table))
