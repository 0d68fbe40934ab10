"""The report's subgroups section (docs/science.md section 8): each model's worst group of classes and worst class
against the base's, a distilled model against its teacher group by group (the groups it is worse on while better
overall), and the groups that a pair's ensemble hurts."""

from __future__ import annotations

import numpy as np
import polars as pl

from zooscope.report import figures
from zooscope.report.data import ReportData, model_order
from zooscope.report.page import Column, Html, Section, join, table, tag

__all__ = ["subgroups_section", "group_name"]


def _points(value: float) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{100 * value:+.2f}"


def _pct(value: float) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{100 * value:.2f}"


def _interval(lo: float, hi: float) -> str:
    return f"[{_points(lo)}, {_points(hi)}]"


def group_name(data: ReportData, group: str | None) -> str:
    """A group's name as the page shows it: a single class by its class name."""
    if group is None:
        return "–"
    if group.startswith("class "):
        index = int(group.split(" ", 1)[1])
        return data.classes[index] if index < len(data.classes) else group
    return group


def _worst_rows(data: ReportData, worst: dict) -> list[dict]:
    rows = []
    for model in model_order(data.models):
        row: dict = {"model": model}
        for kind in ("group", "class"):
            w = worst.get(model, {}).get(kind)
            if w:
                row |= {f"{kind}_worst": group_name(data, w["worst"]), f"{kind}_acc": 100 * w["accuracy"],
                        f"{kind}_gap": 100 * w["gap_to_base"],
                        f"{kind}_ci": _interval(w["gap_lo"], w["gap_hi"])}
        rows.append(row)
    return rows


def _distillation(data: ReportData, distillation: dict) -> Html:
    if not distillation:
        return tag("p", "No distilled model of the zoo has its teacher in the zoo (a recipe:distill model whose "
                        "inline teacher is a zoo member's spec), so there is no student to compare with its teacher.",
                   class_="note")
    parts = []
    for student, d in distillation.items():
        overall = d["overall_vs_teacher"]
        harmed = d["harmed"]
        verdict = f"{student} (distilled from {d['teacher']}): {_points(overall)} points against its teacher overall"
        if harmed:
            named = "; ".join(f"{group_name(data, h['group'])} {_points(h['vs_teacher'])} {_interval(h['lo'], h['hi'])}"
                              for h in harmed)
            verdict += (f", and below it on {len(harmed)} group(s) or class(es): {named} "
                        "(points, 95% interval over images).")
        elif overall > 0:
            verdict += ", and at or above it on every group and class."
        else:
            worst = d["worst"].get("class") or d["worst"].get("group")
            verdict += (f"; distillation did not help overall here (largest loss: {group_name(data, worst['group'])}, "
                        f"{_points(worst['vs_teacher'])} points)." if worst else ".")
        parts.append(tag("p", verdict, class_="flag" if harmed else None))
    if data.groups is not None:
        rows = (data.groups.drop_nulls("teacher")
                .select("model", "teacher", "kind", "group", "support", "accuracy", "vs_teacher", "vs_teacher_lo",
                        "vs_teacher_hi", "harmed_by_distillation").to_dicts())
        for r in rows:
            r |= {"group": group_name(data, r["group"]), "acc": 100 * r["accuracy"], "diff": 100 * r["vs_teacher"],
                  "ci": _interval(r["vs_teacher_lo"], r["vs_teacher_hi"]),
                  "harmed": "harmed" if r["harmed_by_distillation"] else ""}
        cols = [Column("model", "student"), Column("teacher", "teacher"), Column("group", "group or class"),
                Column("support", "images", str, True), Column("acc", "student acc. (%)", _pct2, True),
                Column("diff", "student − teacher (points)", _signed2, True),
                Column("ci", "95% interval", str, False, "over eval images"),
                Column("harmed", "better overall, worse here")]
        parts.append(tag("div", table(rows, cols, sortable=True), class_="scroll tall"))
    return join(parts)


def _pct2(value: float) -> str:
    return f"{value:.2f}"


def _signed2(value: float) -> str:
    return f"{value:+.2f}"


def _ensembles(data: ReportData, hurt: dict) -> Html:
    if not hurt.get("of"):
        return tag("p", "No groups of classes are declared (ensemble.class_groups).", class_="note")
    text = (f"{hurt['rows']} of {hurt['of']} (pair, group) combinations, in {hurt['pairs']} pairs: the ensemble of the "
            "two models is less accurate on the group than the member that is better overall. Per class, see "
            "artifacts/pairs_per_class.parquet (ens_vs_better).")
    rows = [r | {"ens": 100 * r["acc_ens"], "diff": 100 * r["ens_vs_better"]} for r in hurt["worst"]]
    cols = [Column("model_a", "model a"), Column("model_b", "model b"), Column("group", "group"),
            Column("support", "images", str, True), Column("ens", "ensemble acc. (%)", _pct2, True),
            Column("diff", "ensemble − better member (points)", _signed2, True)]
    return join([tag("p", text), tag("div", table(rows, cols, sortable=True, caption="The largest losses"),
                                     class_="scroll")]) if rows else tag("p", text)


def subgroups_section(data: ReportData) -> list[Section]:
    """Worst groups per model, distillation per group and the groups ensembles hurt; none without the group table."""
    sub = data.study_metrics.get("subgroups")
    if data.groups is None or not sub:
        return []
    order = model_order(data.models)
    frame = data.groups
    names = list(dict.fromkeys(frame["group"].to_list()))
    gap = (frame.pivot(on="group", index="model", values="gap_to_base")
           .join(pl.DataFrame({"model": order}), on="model", how="right", maintain_order="right")
           .select(names).to_numpy())
    fig = figures.class_heatmap(100 * gap, order, [group_name(data, g) for g in names],
                                label="accuracy minus the base's (points): blue = better")
    cols = [Column("model", "model"),
            Column("group_worst", "worst group"), Column("group_acc", "its acc. (%)", _pct2, True),
            Column("group_gap", "vs the base's worst group (points)", _signed2, True),
            Column("group_ci", "95% interval", str, False, "over eval images"),
            Column("class_worst", "worst class"), Column("class_acc", "its acc. (%)", _pct2, True),
            Column("class_gap", "vs the base's worst class (points)", _signed2, True),
            Column("class_ci", "95% interval", str, False, "over eval images")]
    body = join([
        tag("figure", fig, tag("figcaption", "Rows: models by category relative to the base; columns: the groups of "
                                             "ensemble.class_groups, then each class. Each cell: the model's eval "
                                             "accuracy on the group minus the base model's. The data: "
                                             f"{data.artifacts.get('subgroup_plot', 'plots/subgroup_gap.csv')}.")),
        tag("h3", "Worst group and worst class of each model"),
        tag("div", table(_worst_rows(data, sub["worst_group"]), cols, sortable=True), class_="scroll"),
        tag("p", "Worst-group accuracy: the lowest accuracy over the groups (Sagawa et al. 2020). The gap compares it "
                 "with the base's own worst group, which may be another one; its interval recomputes both minima in "
                 "every resample. " + sub["population"] + ".", class_="note"),
        tag("h3", "Distilled models against their teachers"),
        _distillation(data, sub["distillation"]),
        tag("h3", "Groups a pair's ensemble hurts"),
        _ensembles(data, sub["ensembles_hurt_groups"]),
    ])
    return [Section("subgroups", "Subgroups: worst groups, distillation, ensembles",
                    data.source("groups", "study_metrics", "per_group", "subgroup_plot"), body,
                    "Accuracy on each group of classes and on each class: which models pay for their overall accuracy "
                    "on a group, and where distillation or an ensemble hurts one.")]
