"""Report sections about the study as a whole: the summary and finding lines, the per-model table, the
per-category headline (table and the paper's kappa-by-category figure) and the ensembles."""

from __future__ import annotations

import numpy as np

from zooscope.report import figures
from zooscope.report.data import ReportData
from zooscope.report.page import Column, Html, Section, join, tag, table
from zooscope.summary import category_rows, study_facts
from zooscope.vocab import SUBSETS

__all__ = ["summary_section", "models_section", "categories_section", "ensembles_section", "image_split_section", "pct",
           "num"]


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def num(value: float) -> str:
    return f"{value:.3f}"


def signed_pct(value: float) -> str:
    return f"{100 * value:+.2f}"


def _fact(value: object, label: str) -> Html:
    return tag("div", tag("b", value), tag("span", label), class_="fact")


def summary_section(data: ReportData) -> list[Section]:
    facts = study_facts(data.study, data.study_metrics, split_sizes=data.split_sizes)
    splits = ", ".join(f"{name} {size:,}" for name, size in facts["splits"].items())
    best = data.models.drop_nulls("top1").sort("top1", descending=True).row(0, named=True)
    boxes = [_fact(facts["dataset"], "dataset"), _fact(len(data.classes), "classes"), _fact(splits, "samples per split"),
             _fact(facts["models"], f"models ({facts['weak_models']} deliberately weak)"), _fact(facts["base"], "base model"),
             _fact(f"{facts['pairs']} / {facts['matched_pairs']}",
                   f"pairs / accuracy-matched (|Δacc| ≤ {100 * (facts['matched_band'] or 0):.0f} pts)"),
             _fact(f"{best['model']} {pct(best['top1'])}%", "best top-1")]
    findings = tag("ul", join(tag("li", f) for f in facts["findings"]), class_="findings")
    warnings = ([tag("h3", "Can this zoo answer the question? Design warnings"),
                 tag("ul", join(tag("li", w) for w in facts["lint"]), class_="warnings")] if facts["lint"] else [])
    headline = [tag("p", sentence, class_="headline") for sentence in facts["headline"]]
    body = join([*warnings, *headline, tag("div", join(boxes), class_="facts"), tag("h3", "Findings by category"), findings, tag(
        "p", f"Categories are the most divergent methodology tag between the two models of a pair (reinit < hyperparameters "
             f"< architecture < framework < dataset). Each mean has two 95% bootstrap intervals ({facts['n_boot']} resamples): "
             f"over eval images, for these very models, and over models and images, for models made this way. '>' means "
             f"the difference between neighbouring categories lies above zero over models and images; '~ (only over "
             f"images)' that it does for these models only; '~' that it does not.",
        class_="note")])
    return [Section("summary", "Study summary", data.source("study_metrics", "model_metrics"), body)]


_MODEL_COLUMNS = (
    Column("model", "model"), Column("category", "category vs base"), Column("source", "source"),
    Column("top1", "top-1 %", pct, True), Column("vs_base", "vs base", signed_pct, True, "top-1 minus the base model's"),
    Column("top5", "top-5 %", pct, True), Column("nll", "NLL", num, True), Column("ece", "ECE", num, True, "15 bins"),
    Column("temperature", "T", num, True, "fitted temperature"), Column("probe_acc", "probe %", pct, True, "linear probe"),
    Column("knn_acc", "k-NN %", pct, True),
)


def models_section(data: ReportData) -> list[Section]:
    rows = [r | {"model": r["model"] + (" (weak)" if r["weak"] else "")} for r in data.models.iter_rows(named=True)]
    body = tag("div", table(rows, _MODEL_COLUMNS, sortable=True), class_="scroll")
    return [Section("models", "Models", data.source("model_metrics"), body,
                    "Eval-split quality of every model. Click a column header to sort.")]


def _interval(stat: str, fmt):
    """``mean [lo, hi; zoo_lo, zoo_hi]``: the intervals over images and over models and images."""
    def show(r: dict) -> str:
        zoo = (f"{fmt(r[f'{stat}_zoo_lo'])}, {fmt(r[f'{stat}_zoo_hi'])}" if r.get(f"{stat}_zoo_lo") is not None
               else "–")
        return f"{fmt(r[stat])} [{fmt(r[f'{stat}_lo'])}, {fmt(r[f'{stat}_hi'])}; {zoo}]"
    return show


def _three(value: float) -> str:
    return f"{value:.3f}"


def _signed4(value: float) -> str:
    return f"{value:+.4f}"


def categories_section(data: ReportData) -> list[Section]:
    rows = category_rows(data.study_metrics)
    ci = "[95% CI over images; over models and images]"
    columns = [Column("category", "category"), Column("pairs", "pairs", str, True),
               Column("models", "models", str, True, "distinct models in the category's pairs"),
               Column("kappa", f"kappa {ci}", lambda v: v, True),
               Column("error_inconsistency", f"error inconsistency {ci}", lambda v: v, True),
               Column("gain", f"ensemble gain {ci}", lambda v: v, True), Column("cka_debiased", "CKA (debiased)", num, True),
               Column("mutual_knn", "mutual k-NN", num, True)]
    parts = []
    for subset, (_, label) in SUBSETS.items():
        subset_rows = [r for r in rows if r["subset"] == subset]
        shown = [r | {"kappa": _interval("kappa", _three)(r), "error_inconsistency": _interval("error_inconsistency", _three)(r),
                      "gain": _interval("gain", _signed4)(r)} for r in subset_rows]
        parts.append(table(shown, columns, caption=label) if shown else tag("p", f"{label}: none", class_="note"))
    figure = tag("figure", figures.category_bars(rows) if rows else Html(""), tag(
        "figcaption", "Error consistency (Cohen's kappa) by methodology category with 95% bootstrap intervals: solid bars "
                      "over all pairs, hatched over accuracy-matched pairs. The paper's headline: the further apart two "
                      "training methodologies, the less their errors agree."))
    body = join([figure, tag("div", join(parts), class_="scroll")])
    return [Section("categories", "Agreement by methodology category", data.source("study_metrics"), body,
                    "Means over the pairs of each category. The first interval resamples the eval images (these models); "
                    "the second also redraws the zoo's models (models made this way), and is wide where a category rests "
                    "on few models.")]


def ensembles_section(data: ReportData) -> list[Section]:
    pairs = data.pairs
    matched = pairs.filter(pairs["matched"])
    subset = matched if len(matched) else pairs
    names = [f"{a} + {b}" for a, b in subset.select("model_a", "model_b").rows()]
    scatter = figures.gain_vs_kappa(subset["kappa"].to_numpy(), subset["gain"].to_numpy(), subset["category"].to_list(), names)
    greedy = [data.study_metrics["greedy"][f"size_{k}"] for k in range(1, len(data.study_metrics.get("greedy", {})) + 1)]
    best_single = float(np.nanmax(data.models["top1"].to_numpy()))
    curve = figures.greedy_curve([g["accuracy"] for g in greedy], [g["added"] for g in greedy], best_single=best_single)
    which = "accuracy-matched pairs" if len(matched) else "all pairs (no pair is accuracy-matched)"
    figs = tag("div", tag("figure", scatter, tag("figcaption", f"Ensemble gain against kappa, {which}; the pair with the "
                                                                 "highest gain is labelled.")),
               tag("figure", curve, tag("figcaption", "Greedy forward selection: accuracy of the ensemble against its size, "
                                                      "each point labelled with the model it adds; dashed: the best single model.")),
               class_="figs")
    partners = [{"model": m, **v} for m, v in data.study_metrics.get("best_partner", {}).items()]
    cols = [Column("model", "strong model"), Column("accuracy", "its top-1 %", pct, True), Column("partner", "best partner"),
            Column("partner_accuracy", "partner top-1 %", pct, True), Column("category", "category"),
            Column("ensemble_accuracy", "ensemble %", pct, True), Column("gain", "gain (pts)", signed_pct, True),
            Column("classes_hurt", "classes hurt", str, True, "classes where the ensemble is below the better member")]
    body = join([figs, tag("h3", "Best partner of the strongest models"),
                 tag("div", table(partners, cols, sortable=True), class_="scroll")])
    return [Section("ensembles", "Ensembles", data.source("pairs", "study_metrics"), body,
                    "Two-model ensembles average temperature-scaled probabilities; gain is over the better member.")]


def image_split_section(data: ReportData) -> list[Section]:
    """Meding et al. (2022): the eval images every model gets right, those none does, and the separating rest."""
    split = data.study_metrics.get("image_split")
    if not split:
        return []
    n = sum(split[k] for k in ("trivial", "separating", "impossible"))
    rows = [{"class": data.classes[int(c)], **counts} for c, counts in split["per_class"].items()]
    rows.append({"class": "all", **{k: split[k] for k in ("trivial", "separating", "impossible")}})
    share = lambda v: f"{v:,} ({100 * v / max(n, 1):.1f}%)" if isinstance(v, int) else v  # noqa: E731
    cols = [Column("class", "class"), Column("trivial", "every model right", str, True),
            Column("separating", "separating", str, True, "some models right, some wrong"),
            Column("impossible", "every model wrong", str, True)]
    text = (f"Of {n:,} eval images, {share(split['separating'])} separate the models; the agreement statistics can differ "
            f"between pairs only there. {share(split['trivial'])} are right for every model and "
            f"{share(split['impossible'])} wrong for every model.")
    return [Section("image-split", "Which images separate the models", data.source("study_metrics"),
                    join([tag("p", text), tag("div", table(rows, cols, sortable=True), class_="scroll")]),
                    "The three-way split of Meding et al. (2022), per class.")]
