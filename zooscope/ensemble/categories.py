"""The study's headline: per methodology category, how much pairs agree and how much their ensembles gain,
over all pairs, over accuracy-matched pairs and over pairs without weak models, each mean with two
bootstrap intervals that speak for two populations:

- **over images** (``<stat>_lo``, ``<stat>_hi``): the zoo held fixed, the eval images resampled. It answers
  "for these very models, on other test images like these?". Every pair is resampled with the same image
  rows (``zooscope.ensemble.bootstrap``), so a category mean's interval is the percentile interval of the
  per-resample means.
- **over models and images** (``<stat>_zoo_lo``, ``<stat>_zoo_hi``): each resample also redraws the zoo's
  models with replacement and keeps the pairs of the redrawn zoo (a pair of two drawn models counts as
  often as both were drawn; :func:`zooscope.ensemble.bootstrap.model_resample_weights`). It answers "for
  other models made the way these were, on other test images?", and is wide where a category rests on few
  models, as it should be. ``<stat>_zoo_missing`` is the share of resamples whose zoo had no pair of the
  category (the interval is over the others).

Differences between categories are bootstrapped on the same resamples. A finding line writes ``>`` only
where the interval over models and images of the difference between neighbouring categories lies above
zero, ``~`` otherwise, and ``~ (only over images)`` where the difference holds for these models but not
for models made this way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from zooscope.vocab import CATEGORIES, CATEGORY_STATS, SUBSETS
from zooscope.ensemble.bootstrap import interval95

__all__ = [
    "PAIRS_COLUMNS", "pairs_table", "category_tables", "finding", "best_partners", "plot_frames", "study_metrics",
    "format_categories", "CATEGORY_METRIC_KEYS", "category_metrics", "headline",
]

#: The columns of artifacts/pairs.parquet, in order (further columns follow them).
PAIRS_COLUMNS = (
    "model_a", "model_b", "category", "acc_a", "acc_b", "kappa", "kappa_lo", "kappa_hi", "kappa_max",
    "error_inconsistency", "error_corr", "disagreement", "ens_acc", "gain", "gain_lo", "gain_hi", "conversion",
    "cka", "cka_debiased", "mutual_knn", "mutual_knn_null", "concat_probe_acc",
)
#: How the finding lines write each statistic: kappa to 2 places, the rates (error inconsistency, ensemble
#: gain: small fractions of the samples) to 3 and 4, the gain signed.
#: How a finding line writes each statistic: its name, the factor on its values (gain: fractions to points), format.
_FORMATS = {"kappa": ("kappa", 1.0, "{:.2f}"), "error_inconsistency": ("error_inconsistency", 1.0, "{:.3f}"),
            "gain": ("gain (points)", 100.0, "{:+.2f}")}


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
    in_subset = {"all": lambda: np.ones(len(frame), bool), "matched": lambda: frame["matched"].to_numpy(),
                 "strong": lambda: ~frame["weak_pair"].to_numpy()}[subset]()
    category = frame["category"].to_numpy()
    return {cat: in_subset & (category == cat) for cat in CATEGORIES if (in_subset & (category == cat)).any()}


def _zoo_means(draws: np.ndarray, zoo: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per resample, the mean over the pairs of ``mask`` in the redrawn zoo: float [n_boot], nan where the
    redrawn zoo has none of them. draws: [n_pairs, n_boot]; zoo: [n_boot, n_pairs] pair counts."""
    weight = zoo[:, mask]
    total = weight.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (weight * draws[mask].T).sum(1) / total, np.nan)


def _zoo_interval(draws: np.ndarray) -> tuple[float, float, float]:
    """(lo, hi, share of nan draws): the 95% interval over the draws that exist."""
    ok = draws[np.isfinite(draws)]
    missing = 1.0 - len(ok) / len(draws)
    if len(ok) == 0:
        return math.nan, math.nan, missing
    lo, hi = interval95(ok)
    return float(lo), float(hi), missing


def category_tables(frame: pl.DataFrame, draws: dict[str, np.ndarray],
                    zoo: np.ndarray) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"all" | "matched" | "strong": {category: {pairs, models, <stat>, <stat>_lo, <stat>_hi, <stat>_zoo_lo,
    <stat>_zoo_hi, <stat>_zoo_missing, ...}}}``.

    Args:
        frame: the pair table (``model_a``, ``model_b``, ``category``, ``matched``, ``weak_pair``, the stats,
            ``cka_debiased``, ``mutual_knn``).
        draws: stat -> image-bootstrap draws float [n_pairs, n_boot] of kappa, error_inconsistency and gain.
        zoo: float [n_boot, n_pairs], how often each pair appears in each resample's redrawn zoo.

    Each stat is the mean over the category's pairs with the two 95% intervals of that mean (see the module's
    docstring); ``models`` counts the distinct models in its pairs; mean debiased CKA and mutual k-NN are given
    without intervals.
    """
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    for subset in SUBSETS:
        tables[subset] = {}
        for cat, mask in _groups(frame, subset).items():
            rows = frame.filter(pl.Series(mask))
            entry: dict[str, Any] = {"pairs": len(rows), "models": len(set(rows["model_a"]) | set(rows["model_b"]))}
            for stat in CATEGORY_STATS:
                lo, hi = interval95(draws[stat][mask].mean(0))
                zlo, zhi, missing = _zoo_interval(_zoo_means(draws[stat], zoo, mask))
                entry |= {stat: rows[stat].mean(), f"{stat}_lo": float(lo), f"{stat}_hi": float(hi),
                          f"{stat}_zoo_lo": zlo, f"{stat}_zoo_hi": zhi, f"{stat}_zoo_missing": missing}
            entry |= {col: rows[col].fill_nan(None).mean() for col in ("cka_debiased", "mutual_knn")}
            tables[subset][cat] = {key: _number(value) for key, value in entry.items()}
    return tables


def _above_zero(difference: np.ndarray) -> bool:
    """Whether the 95% interval of bootstrap differences lies above zero (nan draws, where a redrawn zoo lacks
    a category, are left out; a difference that exists in fewer than half the draws is not established)."""
    ok = difference[np.isfinite(difference)]
    return len(ok) >= len(difference) / 2 and interval95(ok)[0] > 0


def _formatter(stat: str) -> Callable[[float], str]:
    """How a statistic is written (:data:`_FORMATS`)."""
    _, factor, pattern = _FORMATS[stat]
    return lambda value: pattern.format(factor * value)


def finding(frame: pl.DataFrame, draws: dict[str, np.ndarray], zoo: np.ndarray, *, stat: str = "kappa") -> str:
    """One line ranking the categories by mean ``stat``, e.g. ``kappa, accuracy-matched pairs (95% CI over
    images; over models and images): reinit 0.76 [0.72, 0.80; 0.61, 0.86] ~ (only over images) architecture
    0.62 [0.55, 0.68; 0.50, 0.71] ...`` (``stat``: kappa, error_inconsistency or gain, written in points).

    Uses the accuracy-matched pairs when at least two categories have some, else all pairs. ``>``: the
    interval over models and images of the difference between neighbouring categories is above zero;
    ``~ (only over images)``: only its interval over images is; ``~``: neither.
    """
    subset = "matched" if len(_groups(frame, "matched")) >= 2 else "all"
    groups = _groups(frame, subset)
    values = frame[stat].to_numpy()
    means = {cat: float(values[mask].mean()) for cat, mask in groups.items()}
    image = {cat: draws[stat][mask].mean(0) for cat, mask in groups.items()}
    both = {cat: _zoo_means(draws[stat], zoo, mask) for cat, mask in groups.items()}
    order = sorted(groups, key=lambda c: -means[c])
    fmt = _formatter(stat)
    text = f"{_FORMATS[stat][0]}, {SUBSETS[subset].label} (95% CI over images; over models and images):"
    for i, cat in enumerate(order):
        if i:
            prev = order[i - 1]
            if _above_zero(both[prev] - both[cat]):
                text += " >"
            else:
                text += " ~ (only over images)" if _above_zero(image[prev] - image[cat]) else " ~"
        lo, hi = interval95(image[cat])
        zlo, zhi, _ = _zoo_interval(both[cat])
        text += f" {cat} {fmt(means[cat])} [{fmt(lo)}, {fmt(hi)}; {fmt(zlo)}, {fmt(zhi)}]"
    return text


#: What the pairs of a category differ in at most (its most divergent methodology tag), for sentences.
_DIFFER_IN = {"reinit": "only their random seed", "hyperparameters": "their hyperparameters",
              "architecture": "their architecture", "framework": "their training framework",
              "dataset": "their training data"}


def headline(frame: pl.DataFrame, draws: dict[str, np.ndarray], zoo: np.ndarray) -> list[str]:
    """The finding in plain sentences, for the report's first screen: kappa and ensemble gain of the pairs that
    differ least in methodology against those that differ most (the categories present that are nearest and
    farthest in the order reinit < ... < dataset), each difference with its 95% interval over models and images
    (the one that speaks for models made this way), and whether that interval excludes zero. Accuracy-matched
    pairs when at least two categories have some, as :func:`finding`. Empty below two categories."""
    subset = "matched" if len(_groups(frame, "matched")) >= 2 else "all"
    groups = _groups(frame, subset)
    if len(groups) < 2:
        return []
    near, far = list(groups)[0], list(groups)[-1]  # _groups keeps the order of CATEGORIES
    means, diff = {}, {}
    for stat in ("kappa", "gain"):
        values = frame[stat].to_numpy()
        means[stat] = (float(values[groups[near]].mean()), float(values[groups[far]].mean()))
        lo, hi, _ = _zoo_interval(_zoo_means(draws[stat], zoo, groups[near]) - _zoo_means(draws[stat], zoo, groups[far]))
        diff[stat] = (means[stat][0] - means[stat][1], lo, hi)

    def verdict(lo: float, hi: float) -> str:
        if lo > 0 or hi < 0:
            return "an interval that excludes zero: it holds for models made this way, not only for these"
        return "an interval that includes zero: this zoo cannot tell the two apart beyond these very models"

    (k_near, k_far), (dk, klo, khi) = means["kappa"], diff["kappa"]
    (g_near, g_far), (dg, glo, ghi) = means["gain"], diff["gain"]
    pairs = SUBSETS[subset].label
    return [
        f"Models that differ in {_DIFFER_IN[far]} make {'fewer' if dk > 0 else 'more'} of the same mistakes than models "
        f"that differ in {_DIFFER_IN[near]}: error consistency (Cohen's kappa of their errors; 1 = the same mistakes) "
        f"is {k_far:.2f} for {far} pairs against {k_near:.2f} for {near} pairs ({pairs}), a difference of "
        f"{dk:+.2f} with 95% interval [{klo:+.2f}, {khi:+.2f}] over models and images, {verdict(klo, khi)}.",
        f"Averaging the two models' probabilities gains {100 * g_far:+.2f} points of accuracy over the better one for "
        f"{far} pairs and {100 * g_near:+.2f} points for {near} pairs: {far} pairs gain {100 * -dg:+.2f} points more, "
        f"95% interval [{100 * -ghi:+.2f}, {100 * -glo:+.2f}], {verdict(-ghi, -glo)}.",
    ]


def best_partners(frame: pl.DataFrame, per_class: pl.DataFrame, *, strongest: int) -> dict[str, dict[str, Any]]:
    """For each of the ``strongest`` most accurate models, the partner whose ensemble with it gains most, both
    chosen on the calibration split (``cal_acc_a``, ``cal_acc_b``, ``cal_gain``) and reported on eval: choosing
    and reporting on one split would flatter the gain (the winner's curse).

    Returns:
        model -> {accuracy, partner, partner_accuracy, ensemble_accuracy, gain, gain_lo, gain_hi, category,
        classes_hurt (classes where the ensemble is below the better member), calibration_gain} (eval numbers
        unless named otherwise); a partner weaker than the model that still gains is the paper's "a weaker
        model can improve a stronger one".
    """
    sides = [frame.select(pl.col(f"model_{me}").alias("model"), pl.col(f"acc_{me}").alias("acc"),
                          pl.col(f"cal_acc_{me}").alias("cal_acc"), pl.col(f"model_{other}").alias("partner"),
                          pl.col(f"acc_{other}").alias("partner_acc"), "model_a", "model_b", "ens_acc", "gain",
                          "gain_lo", "gain_hi", "cal_gain", "category")
             for me, other in (("a", "b"), ("b", "a"))]
    both = pl.concat(sides)
    accuracy = both.group_by("model").agg(pl.col("cal_acc").first()).sort(["cal_acc", "model"], descending=[True, False])
    result = {}
    for model in accuracy["model"].head(strongest):
        best = both.filter(pl.col("model") == model).sort("cal_gain", descending=True, maintain_order=True).row(0, named=True)
        hurt = per_class.filter((pl.col("model_a") == best["model_a"]) & (pl.col("model_b") == best["model_b"])
                                & (pl.col("ens_vs_better") < 0))
        result[model] = {key: _number(best[col]) for key, col in (
            ("accuracy", "acc"), ("partner", "partner"), ("partner_accuracy", "partner_acc"),
            ("ensemble_accuracy", "ens_acc"), ("gain", "gain"), ("gain_lo", "gain_lo"), ("gain_hi", "gain_hi"),
            ("category", "category"), ("calibration_gain", "cal_gain"))} | {"classes_hurt": len(hurt)}
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


def study_metrics(frame: pl.DataFrame, draws: dict[str, np.ndarray], zoo: np.ndarray,
                  tables: dict[str, dict[str, dict[str, Any]]], per_class: pl.DataFrame, greedy: dict[str, np.ndarray],
                  models: list[str], *, matched_band: float, n_boot: int, strongest: int,
                  lint: list[str]) -> dict[str, Any]:
    """``metrics/study.json``: the category tables (``categories`` over all pairs, ``categories_matched``
    over accuracy-matched ones, from :func:`category_tables`), best partners, the greedy curve, the
    ``headline`` (:func:`headline`), the ``finding`` line (kappa), ``findings`` (kappa, error inconsistency, gain) and ``lint``,
    the zoo's design warnings (:func:`zooscope.config.lint_zoo`) that qualify them."""
    findings = [finding(frame, draws, zoo, stat=stat) for stat in CATEGORY_STATS]
    return {"headline": headline(frame, draws, zoo),
        "models": len(models), "pairs": len(frame), "matched_pairs": int(frame["matched"].sum()),
        "matched_band": matched_band, "n_boot": n_boot,
        **{SUBSETS[subset].key: table for subset, table in tables.items()},
        "best_partner": best_partners(frame, per_class, strongest=strongest),
        "greedy": {f"size_{k + 1}": {"accuracy": float(acc), "added": models[m]}
                   for k, (m, acc) in enumerate(zip(greedy["order"], greedy["accuracy"], strict=True))},
        "pair_classes_hurt": _number(float((per_class["ens_vs_better"] < 0).mean())),
        "finding": findings[0], "findings": findings, "lint": list(lint),
    }


#: The keys of one category's DVC metrics file (``metrics/categories/<category>.json``): flat and numeric, so that
#: `dvc metrics show` is a table a terminal can show, one row per model and per category.
CATEGORY_METRIC_KEYS = ("pairs", *(f"{stat}{end}" for stat in ("kappa", "gain")
                                   for end in ("", "_lo", "_hi", "_zoo_lo", "_zoo_hi")))


def category_metrics(categories: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every category of :data:`zooscope.vocab.CATEGORIES` -> its DVC metrics (:data:`CATEGORY_METRIC_KEYS`, over all
    pairs), from ``metrics/study.json``'s ``categories``; a category without pairs in the zoo has 0 pairs and nulls."""
    return {cat: {key: (categories[cat].get(key) if cat in categories else (0 if key == "pairs" else None))
                  for key in CATEGORY_METRIC_KEYS} for cat in CATEGORIES}


def _with_intervals(entry: dict[str, Any], stat: str) -> str:
    """``mean [lo, hi; zoo_lo, zoo_hi]`` of one category's stat (intervals over images; over models and images)."""
    f = _formatter(stat)
    zoo = (f"{f(entry[f'{stat}_zoo_lo'])}, {f(entry[f'{stat}_zoo_hi'])}" if entry.get(f"{stat}_zoo_lo") is not None
           else "no zoo")
    return f"{f(entry[stat])} [{f(entry[f'{stat}_lo'])}, {f(entry[f'{stat}_hi'])}; {zoo}]"


def format_categories(tables: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The category tables as text: mean of kappa, error inconsistency and gain, each with its 95% interval over
    images and over models and images."""
    cells = {(subset, cat): [_with_intervals(e, stat) for stat in CATEGORY_STATS]
             for subset, cats in tables.items() for cat, e in cats.items()}
    width = [max([len(name), *(len(c[i]) for c in cells.values())]) + 2
             for i, name in enumerate(("kappa", "error inconsistency", "gain"))]
    lines = []
    for subset, cats in tables.items():
        lines.append(SUBSETS[subset].label + ("" if cats else ": none"))
        if cats:
            lines.append(f"  {'category':<16}{'pairs':>5}{'models':>7}  {'kappa':<{width[0]}}"
                         f"{'error inconsistency':<{width[1]}}gain (points)")
        for cat, e in cats.items():
            kappa, ei, gain = cells[subset, cat]
            lines.append(f"  {cat:<16}{e['pairs']:>5}{e['models']:>7}  {kappa:<{width[0]}}{ei:<{width[1]}}{gain}")
    lines.append("  [95% interval over images; over models and images]")
    return "\n".join(lines)
