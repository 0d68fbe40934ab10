"""The study's headline (science.md sections 2 to 4): per methodology category, how much pairs agree and
how much their ensembles gain, over all pairs and over accuracy-matched pairs, with bootstrap intervals.

Every pair is resampled with the same bootstrap rows (``zooscope.ensemble.bootstrap``), so the interval of a
category mean is the percentile interval of the per-resample means, and the difference between two
categories is bootstrapped the same way: the finding line writes ``>`` only where that difference's
interval lies above zero, ``~`` otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from zooscope.vocab import CATEGORIES, CATEGORY_STATS, SUBSETS
from zooscope.ensemble.bootstrap import interval95

__all__ = [
    "PAIRS_COLUMNS", "pairs_table", "category_tables", "finding", "best_partners", "plot_frames", "study_metrics",
    "format_categories",
]

#: The columns of artifacts/pairs.parquet, in order (further columns follow them).
PAIRS_COLUMNS = (
    "model_a", "model_b", "category", "acc_a", "acc_b", "kappa", "kappa_lo", "kappa_hi", "kappa_max",
    "error_inconsistency", "error_corr", "disagreement", "ens_acc", "gain", "gain_lo", "gain_hi", "conversion",
    "cka", "cka_debiased", "mutual_knn", "mutual_knn_null", "concat_probe_acc",
)
#: How the finding lines write each statistic: kappa to 2 places, the rates (error inconsistency, ensemble
#: gain: small fractions of the samples) to 3 and 4, the gain signed.
_FORMATS = {"kappa": "{:.2f}", "error_inconsistency": "{:.3f}", "gain": "{:+.4f}"}


def _number(value: Any) -> Any:
    """A JSON-safe scalar: nan becomes None."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and math.isnan(value) else value


def pairs_table(ensemble: pl.DataFrame, similarity: pl.DataFrame) -> pl.DataFrame:
    """The ensemble and similarity tables side by side: ``PAIRS_COLUMNS`` first, then the other columns."""
    keys = ["model_a", "model_b"]
    if set(ensemble.select(keys).rows()) != set(similarity.select(keys).rows()):
        raise ValueError("the similarity table covers other pairs than the predictions; re-run the similarity stage")
    joined = ensemble.join(similarity.drop("category"), on=keys, how="left", maintain_order="left")
    return joined.select(*PAIRS_COLUMNS, *(c for c in joined.columns if c not in PAIRS_COLUMNS))


def _groups(frame: pl.DataFrame, subset: str) -> dict[str, np.ndarray]:
    """category -> bool [n_pairs] mask of its pairs in ``subset`` (categories without pairs are left out)."""
    in_subset = np.ones(len(frame), bool) if subset == "all" else frame["matched"].to_numpy()
    category = frame["category"].to_numpy()
    return {cat: in_subset & (category == cat) for cat in CATEGORIES if (in_subset & (category == cat)).any()}


def category_tables(frame: pl.DataFrame, draws: dict[str, np.ndarray]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"all" | "matched": {category: {pairs, <stat>, <stat>_lo, <stat>_hi, ...}}}``.

    Args:
        frame: the pair table (``category``, ``matched``, the stats, ``cka_debiased``, ``mutual_knn``).
        draws: stat -> bootstrap draws float [n_pairs, n_boot] of kappa, error_inconsistency and gain.

    Each stat is the mean over the category's pairs with the 95% interval of that mean; mean debiased
    CKA and mutual k-NN are given without intervals.
    """
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    for subset in SUBSETS:
        tables[subset] = {}
        for cat, mask in _groups(frame, subset).items():
            rows = frame.filter(pl.Series(mask))
            entry: dict[str, Any] = {"pairs": len(rows)}
            for stat in CATEGORY_STATS:
                lo, hi = interval95(draws[stat][mask].mean(0))
                entry |= {stat: rows[stat].mean(), f"{stat}_lo": float(lo), f"{stat}_hi": float(hi)}
            entry |= {col: rows[col].fill_nan(None).mean() for col in ("cka_debiased", "mutual_knn")}
            tables[subset][cat] = {key: _number(value) for key, value in entry.items()}
    return tables


def finding(frame: pl.DataFrame, draws: dict[str, np.ndarray], *, stat: str = "kappa") -> str:
    """One line ranking the categories by mean ``stat``, e.g.
    ``kappa, accuracy-matched pairs (95% CI): reinit 0.76 [0.72, 0.80] > architecture 0.62 [0.55, 0.68] ~ ...``
    (``stat``: kappa, error_inconsistency or gain).

    Uses the accuracy-matched pairs when at least two categories have some, else all pairs. ``>``: the
    interval of the difference between neighbouring categories is above zero; ``~``: it is not.
    """
    subset = "matched" if len(_groups(frame, "matched")) >= 2 else "all"
    groups = _groups(frame, subset)
    values = frame[stat].to_numpy()
    means = {cat: float(values[mask].mean()) for cat, mask in groups.items()}
    cat_draws = {cat: draws[stat][mask].mean(0) for cat, mask in groups.items()}
    order = sorted(groups, key=lambda c: -means[c])
    text = f"{stat}, {SUBSETS[subset].label} (95% CI):"
    for i, cat in enumerate(order):
        if i:
            text += " >" if interval95(cat_draws[order[i - 1]] - cat_draws[cat])[0] > 0 else " ~"
        lo, hi = interval95(cat_draws[cat])
        fmt = _FORMATS[stat]
        text += f" {cat} {fmt.format(means[cat])} [{fmt.format(lo)}, {fmt.format(hi)}]"
    return text


def best_partners(frame: pl.DataFrame, per_class: pl.DataFrame, *, strongest: int) -> dict[str, dict[str, Any]]:
    """For each of the ``strongest`` most accurate models, the partner whose ensemble with it gains most.

    Returns:
        model -> {accuracy, partner, partner_accuracy, ensemble_accuracy, gain, gain_lo, gain_hi, category,
        classes_hurt (classes where the ensemble is below the better member)}; a partner weaker than the
        model that still gains is the paper's "a weaker model can improve a stronger one".
    """
    sides = [frame.select(pl.col(f"model_{me}").alias("model"), pl.col(f"acc_{me}").alias("acc"),
                          pl.col(f"model_{other}").alias("partner"), pl.col(f"acc_{other}").alias("partner_acc"),
                          "model_a", "model_b", "ens_acc", "gain", "gain_lo", "gain_hi", "category")
             for me, other in (("a", "b"), ("b", "a"))]
    both = pl.concat(sides)
    accuracy = both.group_by("model").agg(pl.col("acc").first()).sort(["acc", "model"], descending=[True, False])
    result = {}
    for model in accuracy["model"].head(strongest):
        best = both.filter(pl.col("model") == model).sort("gain", descending=True, maintain_order=True).row(0, named=True)
        hurt = per_class.filter((pl.col("model_a") == best["model_a"]) & (pl.col("model_b") == best["model_b"])
                                & (pl.col("ens_vs_better") < 0))
        result[model] = {key: _number(best[col]) for key, col in (
            ("accuracy", "acc"), ("partner", "partner"), ("partner_accuracy", "partner_acc"),
            ("ensemble_accuracy", "ens_acc"), ("gain", "gain"), ("gain_lo", "gain_lo"), ("gain_hi", "gain_hi"),
            ("category", "category"))} | {"classes_hurt": len(hurt)}
    return result


def plot_frames(frame: pl.DataFrame, tables: dict[str, dict[str, dict[str, Any]]], greedy: dict[str, np.ndarray],
                models: list[str]) -> dict[str, pl.DataFrame]:
    """The data of the stage's DVC plots: ``kappa_by_category`` (one bar per category and subset),
    ``gain_vs_kappa`` (accuracy-matched pairs) and ``greedy_curve`` (accuracy against ensemble size)."""
    bars = [{"group": f"{cat} ({subset})", "category": cat, "subset": subset, "pairs": entry["pairs"],
             "kappa": entry["kappa"], "kappa_lo": entry["kappa_lo"], "kappa_hi": entry["kappa_hi"]}
            for subset, cats in tables.items() for cat, entry in cats.items()]
    matched = frame.filter(pl.col("matched")).select(
        pair=pl.concat_str("model_a", pl.lit(" + "), "model_b"), category="category", kappa="kappa", gain="gain")
    curve = pl.DataFrame({"size": np.arange(1, len(greedy["order"]) + 1), "accuracy": greedy["accuracy"],
                          "added": [models[m] for m in greedy["order"]]})
    return {"kappa_by_category": pl.DataFrame(bars), "gain_vs_kappa": matched, "greedy_curve": curve}


def study_metrics(frame: pl.DataFrame, draws: dict[str, np.ndarray], tables: dict[str, dict[str, dict[str, Any]]],
                  per_class: pl.DataFrame, greedy: dict[str, np.ndarray], models: list[str], *, matched_band: float,
                  n_boot: int, strongest: int) -> dict[str, Any]:
    """``metrics/study.json``: the category tables (``categories`` over all pairs, ``categories_matched``
    over accuracy-matched ones, from :func:`category_tables`), best partners, the greedy curve, the
    ``finding`` line (kappa) and ``findings`` (kappa, error inconsistency, gain; DVC metrics skip lists)."""
    findings = [finding(frame, draws, stat=stat) for stat in CATEGORY_STATS]
    return {
        "models": len(models), "pairs": len(frame), "matched_pairs": int(frame["matched"].sum()),
        "matched_band": matched_band, "n_boot": n_boot,
        "categories": tables["all"], "categories_matched": tables["matched"],
        "best_partner": best_partners(frame, per_class, strongest=strongest),
        "greedy": {f"size_{k + 1}": {"accuracy": float(acc), "added": models[m]}
                   for k, (m, acc) in enumerate(zip(greedy["order"], greedy["accuracy"], strict=True))},
        "pair_classes_hurt": _number(float((per_class["ens_vs_better"] < 0).mean())),
        "finding": findings[0], "findings": findings,
    }


def format_categories(tables: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The category tables as text: mean and 95% interval of kappa, error inconsistency and gain."""
    lines = []
    for subset, cats in tables.items():
        lines.append(SUBSETS[subset].label + ("" if cats else ": none"))
        if cats:
            lines.append(f"  {'category':<16}{'pairs':>5}  {'kappa':<20}{'error inconsistency':<22}gain")
        for cat, e in cats.items():
            kappa = f"{e['kappa']:.2f} [{e['kappa_lo']:.2f}, {e['kappa_hi']:.2f}]"
            ei = f"{e['error_inconsistency']:.3f} [{e['error_inconsistency_lo']:.3f}, {e['error_inconsistency_hi']:.3f}]"
            lines.append(f"  {cat:<16}{e['pairs']:>5}  {kappa:<20}{ei:<22}{e['gain']:+.4f} [{e['gain_lo']:+.4f}, {e['gain_hi']:+.4f}]")
    return "\n".join(lines)
