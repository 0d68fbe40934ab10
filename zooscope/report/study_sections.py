"""Report sections about the study as a whole: the summary and finding lines, the per-model table, the
per-category headline (table and the paper's kappa-by-category figure) and the ensembles."""

from __future__ import annotations

import numpy as np

from zooscope.report import figures
from zooscope.report.data import ReportData, model_order
from zooscope.report.page import Column, Html, Section, fact, join, tag, table
from zooscope.summary import category_rows, study_facts
from zooscope.vocab import SUBSETS

__all__ = ["summary_section", "models_section", "categories_section", "ensembles_section", "calibration_section",
           "specialisation_section", "image_split_section", "pct",
           "num"]


def pct(value: float) -> str:
    return f"{100 * value:.2f}"


def num(value: float) -> str:
    return f"{value:.3f}"


def signed_pct(value: float) -> str:
    return f"{100 * value:+.2f}"


def summary_section(data: ReportData) -> list[Section]:
    facts = study_facts(data.study, data.study_metrics, split_sizes=data.split_sizes)
    splits = ", ".join(f"{name} {size:,}" for name, size in facts["splits"].items())
    best = data.models.drop_nulls("top1").sort("top1", descending=True).row(0, named=True)
    boxes = [fact(facts["dataset"], "dataset"), fact(len(data.classes), "classes"), fact(splits, "samples per split"),
             fact(facts["models"], f"models ({facts['weak_models']} deliberately weak)"), fact(facts["base"], "base model"),
             fact(f"{facts['pairs']} / {facts['matched_pairs']}",
                   f"pairs / accuracy-matched (|Δacc| ≤ {100 * (facts['matched_band'] or 0):.0f} pts)"),
             fact(f"{best['model']} {pct(best['top1'])}%", "best top-1")]
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


def _points(value: float) -> str:
    return f"{100 * value:+.2f}"


def categories_section(data: ReportData) -> list[Section]:
    rows = category_rows(data.study_metrics)
    ci = "[95% CI over images; over models and images]"
    columns = [Column("category", "category"), Column("pairs", "pairs", str, True),
               Column("models", "models", str, True, "distinct models in the category's pairs"),
               Column("kappa", f"kappa {ci}", lambda v: v, True),
               Column("error_inconsistency", f"error inconsistency {ci}", lambda v: v, True),
               Column("gain", f"ensemble gain, points {ci}", lambda v: v, True),
               Column("cka_debiased", "CKA (debiased)", num, True), Column("mutual_knn", "mutual k-NN", num, True)]
    parts = []
    for subset, (_, label) in SUBSETS.items():
        subset_rows = [r for r in rows if r["subset"] == subset]
        shown = [r | {"kappa": _interval("kappa", _three)(r), "error_inconsistency": _interval("error_inconsistency", _three)(r),
                      "gain": _interval("gain", _points)(r)} for r in subset_rows]
        parts.append(table(shown, columns, caption=label) if shown else tag("p", f"{label}: none", class_="note"))
    figs = []
    if rows:
        figs.append(tag("figure", figures.category_intervals(
            rows, stats=(("kappa", "error consistency (Cohen's kappa)", 1.0),
                         ("gain", "ensemble gain over the better member (points)", 100.0))), tag(
            "figcaption", "Mean kappa and ensemble gain per methodology category (dots: all pairs; diamonds: "
                          "accuracy-matched pairs), with the 95% interval over eval images (thick) and over models and "
                          "images (thin). The paper's finding: the further apart two training methodologies, the less "
                          "their errors agree and the more their ensemble gains. The axes span the intervals, not zero.")))
    figs.append(_accuracy_vs_base(data))
    body = join([*figs, tag("div", join(parts), class_="scroll")])
    return [Section("categories", "Agreement by methodology category", data.source("study_metrics", "pairs"), body,
                    "Means over the pairs of each category. The first interval resamples the eval images (these models); "
                    "the second also redraws the zoo's models (models made this way), and is wide where a category rests "
                    "on few models.")]


def _accuracy_vs_base(data: ReportData) -> Html:
    """The paper's scatter: each model's accuracy against its error consistency with the base model."""
    base = data.study.base
    pairs = data.pairs.filter((data.pairs["model_a"] == base) | (data.pairs["model_b"] == base))
    kappa = {(b if a == base else a): k for a, b, k in pairs.select("model_a", "model_b", "kappa").rows()}
    rows = [r for r in data.models.iter_rows(named=True) if r["model"] in kappa and r["top1"] is not None]
    base_acc = data.models.filter(data.models["model"] == base)["top1"].item()
    x = np.array([kappa[r["model"]] for r in rows])
    # label the model of each category that errs least like the base (lowest kappa), and the least accurate one
    least_like = {r["category"]: i for i, r in sorted(enumerate(rows), key=lambda t: -x[t[0]])}  # lowest kappa last
    labelled = sorted({*least_like.values(), int(np.argmin([r["top1"] for r in rows]))}) if rows else []
    fig = figures.category_scatter(x, np.array([100 * r["top1"] for r in rows]), [r["category"] for r in rows],
                                   xlabel=f"error consistency with {base} (kappa)", ylabel="eval top-1 accuracy (%)",
                                   names=[r["model"] for r in rows], labelled=labelled, hline=100 * base_acc)
    return tag("figure", fig, tag("figcaption", f"Every model's accuracy against its error consistency with the base "
                                                f"model {base} (dashed: the base's accuracy), coloured by category; "
                                                "labelled: the model of each category least like the base, and the "
                                                "least accurate. Do the models that err differently from the base pay "
                                                "for it in accuracy?"))


def ensembles_section(data: ReportData) -> list[Section]:
    pairs = data.pairs
    matched = pairs.filter(pairs["matched"])
    subset = matched if len(matched) else pairs
    names = [f"{a} + {b}" for a, b in subset.select("model_a", "model_b").rows()]
    gain = subset["gain"].to_numpy()
    scatter = figures.category_scatter(subset["kappa"].to_numpy(), 100 * gain, subset["category"].to_list(),
                                       xlabel="error consistency (kappa)",
                                       ylabel="ensemble gain over the better member (points)", names=names,
                                       labelled=[int(np.argmax(gain))] if len(gain) else (), hline=0.0)
    greedy = [data.study_metrics["greedy"][f"size_{k}"] for k in range(1, len(data.study_metrics.get("greedy", {})) + 1)]
    best_single = float(np.nanmax(data.models["top1"].to_numpy()))
    curve = figures.greedy_curve([g["accuracy"] for g in greedy], [g["added"] for g in greedy], best_single=best_single)
    which = "accuracy-matched pairs" if len(matched) else "all pairs (no pair is accuracy-matched)"
    figs = tag("div", tag("figure", scatter, tag("figcaption", f"Ensemble gain against kappa, {which}; the pair with the "
                                                                 "highest gain is labelled.")),
               tag("figure", curve, tag("figcaption", "Greedy forward selection: accuracy of the ensemble against its size, "
                                                      "the model each step adds under the axis; dashed: the best single model.")),
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


def calibration_section(data: ReportData) -> list[Section]:
    """Reliability diagrams: how well each model's temperature-scaled confidence matches its accuracy."""
    if not data.reliability:
        return []
    curves = {m: data.reliability[m] for m in model_order(data.models) if m in data.reliability}
    ece = dict(data.models.select("model", "ece").rows())
    titles = {m: f"{m}\nECE {ece[m]:.3f}" if ece.get(m) is not None else m for m in curves}
    fig = figures.reliability_grid(curves, group_of=data.category_of, titles=titles)
    return [Section("calibration", "Calibration", data.source("probs", "model_metrics"),
                    tag("figure", fig, tag("figcaption", "Per model, the eval accuracy of the samples in each confidence "
                                                         f"bin ({data.study.predict.ece_bins} equal-width bins) against "
                                                         "the dashed diagonal of perfect calibration; bars below it are "
                                                         "over-confident. ECE as in the models table.")),
                    "Reliability diagrams (Guo et al. 2017) of the temperature-scaled probabilities that the ensembles "
                    "average.")]


def specialisation_section(data: ReportData) -> list[Section]:
    """Per-class accuracy of every model against the zoo's mean: which model is better where."""
    order = model_order(data.models)
    index = [data.predictions.models.index(m) for m in order]
    acc = data.predictions.class_accuracy(num_classes=len(data.classes))[index]  # [models, classes]
    present = np.flatnonzero(np.isfinite(acc).all(0))  # classes with eval samples
    acc = acc[:, present]
    delta = 100 * (acc - acc.mean(0, keepdims=True))
    fig = figures.class_heatmap(delta, order, [data.classes[c] for c in present],
                                label="per-class accuracy minus the zoo's mean (points): blue = better")
    best = {data.classes[c]: order[int(np.argmax(acc[:, j]))] for j, c in enumerate(present)}
    text = "Best per class: " + "; ".join(f"{c}: {m}" for c, m in best.items()) + "."
    return [Section("specialisation", "Per-class specialisation across the zoo", data.source("predictions"),
                    join([tag("figure", fig, tag("figcaption", "Rows: models by category relative to the base; columns: "
                                                               "classes. Each cell: the model's eval accuracy on that "
                                                               "class minus the mean over the zoo.")),
                          tag("p", text, class_="note")]),
                    "Where a model is better or worse than the others, class by class: the raw material of "
                    "complementary ensembles.")]


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
