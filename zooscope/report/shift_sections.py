"""The report's section on the zoo off the test set (docs/science.md section 9), from the shift stage's outputs:
accuracy on the corrupted sets against the same images clean with the zoo's probit line (effective robustness),
each model's corruption errors relative to the base, the accuracy of every model on every set, whether pairs'
errors stay as (in)consistent as on clean images, and what each corruption does to an image."""

from __future__ import annotations

import numpy as np
import polars as pl

from zooscope.report import figures
from zooscope.report.data import ReportData, ShiftData
from zooscope.report.page import Column, Html, Section, join, table, tag
from zooscope.report.pair_sections import image_thumb
from zooscope.report.study_sections import num, pct
from zooscope.vocab import group_rank

__all__ = ["shift_sections"]

_MODEL_COLUMNS = (
    Column("model", "model"), Column("category", "category vs base"),
    Column("clean_top1", "clean top-1 %", pct, True, "the same eval images, uncorrupted"),
    Column("mean_top1", "corrupted top-1 %", pct, True, "mean over the corrupted sets"),
    Column("ece_clean", "ECE clean", num, True), Column("ece_shifted", "ECE corrupted", num, True, "mean over the sets"),
    Column("mce", "mCE", num, True, "mean corruption error relative to the base (base = 1)"),
    Column("relative_mce", "relative mCE", num, True, "the same, of the errors above each model's clean error"),
    Column("effective_robustness", "effective robustness", lambda v: f"{100 * v:+.2f}", True,
           "corrupted top-1 minus the zoo's line at this clean top-1, in points"),
)
_CATEGORY_COLUMNS = (
    Column("category", "category"), Column("pairs", "pairs", str, True),
    Column("kappa_clean", "kappa clean", num, True), Column("kappa_shifted", "kappa corrupted", num, True),
    Column("gain_clean", "gain clean (pts)", lambda v: f"{100 * v:+.2f}", True),
    Column("gain_shifted", "gain corrupted (pts)", lambda v: f"{100 * v:+.2f}", True),
)


def _image(pixels: np.ndarray):
    from PIL import Image

    return Image.fromarray(pixels)


def _examples(shift: ShiftData, names: list[str]) -> Html:
    rows = []
    for k in range(min(4, shift.examples.shape[1])):
        rows.append(tag("div", join(image_thumb(_image(shift.examples[j, k]), f"eval image {k + 1}, {name}", [name])
                                    for j, name in enumerate(names)), class_="thumbs"))
    return join(rows)


def _line(metrics: dict, ids: list[str], category: dict[str, str]) -> tuple[Html, str]:
    """The accuracy-on-the-line figure of the corrupted sets' mean (or, without corrupted sets, of the first folder
    against every eval image) and its caption."""
    models, corrupted = metrics["models"], metrics["corrupted_sets"]
    which = "mean" if corrupted else metrics["folder_sets"][0]
    if corrupted:
        clean = np.array([models[m]["clean_top1"] for m in ids])
        shifted = np.array([models[m]["mean_top1"] for m in ids])
        robust = [models[m]["effective_robustness"] for m in ids]
        xlabel, ylabel = "top-1 on the clean images (%)", "top-1, mean over the corrupted sets (%)"
        what = (f"top-1 on the {metrics['samples']:,} eval images clean and, on the y axis, the mean over "
                f"{len(corrupted)} corrupted sets of the same images")
    else:
        clean = np.array([models[m]["eval_top1"] for m in ids])
        shifted = np.array([models[m]["folders"][which]["top1"] for m in ids])
        robust = [models[m]["folders"][which]["effective_robustness"] for m in ids]
        xlabel, ylabel = "top-1 on the eval split (%)", f"top-1 on {which} (%)"
        what = f"top-1 on the eval split and, on the y axis, on the folder {which}"
    expected = shifted - np.array([np.nan if r is None else r for r in robust])
    slope = metrics["lines"][which]["slope"]
    fig = figures.accuracy_on_the_line(clean, shifted, expected, [category[m] for m in ids], names=ids,
                                       xlabel=xlabel, ylabel=ylabel)
    return fig, (f"One point per model: {what}. The curve is the zoo's line, a least-squares fit in probit space "
                 f"(slope {'undefined' if slope is None else f'{slope:.2f}'}); a model above it is more robust than its "
                 "clean accuracy predicts (effective robustness, Taori et al. 2020).")


def _points(value: float) -> str:
    return f"{100 * value:+.2f}"


def shift_sections(data: ReportData) -> list[Section]:
    shift = data.shift
    if shift is None or not shift.metrics["sets"]:
        return []
    metrics, ids = shift.metrics, list(data.study.models)
    category = data.category_of
    corrupted, folders = metrics["corrupted_sets"], metrics["folder_sets"]
    ece = shift.models.pivot(on="set", index="model", values="ece")
    rows = []
    for mid in ids:
        m = metrics["models"][mid]
        e = ece.filter(pl.col("model") == mid).row(0, named=True)
        rows.append({"model": mid, "category": category[mid], **m, "ece_clean": e["clean"],
                     "ece_shifted": float(np.mean([e[s] for s in corrupted])) if corrupted else None,
                     **{f"{f}_top1": m["folders"][f]["top1"] for f in folders},
                     **{f"{f}_robust": m["folders"][f]["effective_robustness"] for f in folders}})
    columns = [*_MODEL_COLUMNS[:2], *(_MODEL_COLUMNS[2:] if corrupted else ()),
               *(c for f in folders for c in (Column(f"{f}_top1", f"{f} top-1 %", pct, True, f"the folder {f}"),
                                              Column(f"{f}_robust", f"{f} effective robustness", _points, True,
                                                     "its top-1 minus the zoo's line at its eval top-1, in points")))]
    fig, caption = _line(metrics, ids, category)
    sets = metrics["sets"]
    acc = shift.models.pivot(on="set", index="model", values="top1")
    matrix = np.array([[acc.filter(pl.col("model") == mid).row(0, named=True)[s] for s in ["clean", *sets]]
                       for mid in ids])
    cats = [{"category": c, "pairs": v["clean"]["pairs"], "kappa_clean": v["clean"]["kappa"],
             "kappa_shifted": v.get("mean", {}).get("kappa"), "gain_clean": v["clean"]["gain"],
             "gain_shifted": v.get("mean", {}).get("gain"), **{f"{f}_kappa": v[f]["kappa"] for f in folders}}
            for c, v in sorted(metrics["categories"].items(), key=lambda kv: group_rank(kv[0]))]
    category_columns = [*_CATEGORY_COLUMNS, *(Column(f"{f}_kappa", f"kappa on {f}", num, True) for f in folders)]
    sources = (shift.table, shift.metrics_path)
    body = join([
        tag("p", metrics["finding"], class_="headline"),
        tag("figure", fig, tag("figcaption", caption)),
        tag("div", table(rows, columns, sortable=True), class_="scroll"),
        tag("h3", "Do the errors stay as (in)consistent?"),
        table(cats, category_columns, caption="Mean error consistency (kappa) and ensemble gain over the pairs of each "
                                              "category, on the clean images, the mean over the corrupted sets and "
                                              "each folder (point estimates for these models and images)."),
        tag("h3", "Every model on every set"),
        tag("figure", figures.class_heatmap(100 * (matrix - matrix.mean(0)), ids, ["clean", *sets],
                                            label="top-1 minus the zoo's mean on the set (points)"),
            tag("figcaption", "Each model's top-1 on each set against the zoo's mean on that set.")),
        *([tag("h3", "What the corruptions do"), _examples(shift, ["clean", *corrupted])] if corrupted else []),
    ])
    return [Section("shift", "Off the test set: corrupted images and shifted folders", (*sources, shift.examples_path),
                    body, "The eval images corrupted (seeded; shift.corruptions in params.yaml) and image folders of the "
                          "same classes (shift.folders), fed through each model's own preprocessing: accuracy, "
                          "calibration, robustness and agreement off the test set.")]
