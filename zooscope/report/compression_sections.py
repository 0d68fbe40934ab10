"""The report's compression section (docs/science.md section 10): every compressed model (``recipe:prune``,
``recipe:quantize``) against its parent, from the compression stage's outputs: sparsity against accuracy, churn,
kappa with the parent and accuracy on the corrupted sets, and the group and class each loses most on."""

from __future__ import annotations

import polars as pl

from zooscope.compression import describe, plot_frame
from zooscope.report import figures
from zooscope.report.data import ReportData
from zooscope.report.group_sections import group_name
from zooscope.report.page import Column, Section, join, table, tag
from zooscope.report.study_sections import num, pct

__all__ = ["compression_section"]

_METHODS = {"parent": "parent (sparsity 0)", "prune": "pruned", "prune+fine-tune": "pruned, then fine-tuned",
            "quantize": "int8 quantised"}


def _points(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.2f}"


def _interval(lo: float, hi: float) -> str:
    return f"[{_points(lo)}, {_points(hi)}]"


#: The figure's panels: a statistic of :data:`zooscope.compression.PLOT_STATISTICS` -> (title, factor).
_PANELS = {"top1": ("top-1 (%)", 100), "churn": ("churn vs parent (%)", 100), "kappa": ("kappa with parent", 1),
           "shift_top1": ("corrupted top-1 (%)", 100), "worst_class_delta": ("largest class loss (pts)", 100)}

_COLUMNS = (
    Column("model", "model"), Column("parent", "parent"), Column("how", "compression", str, False,
                                                                  "sparsity counted from the weights"),
    Column("sparsity", "sparsity %", pct, True, "share of conv and linear weights that are zero, counted from the weights"),
    Column("top1", "top-1 %", pct, True), Column("top1_delta", "vs parent (pts)", _points, True),
    Column("delta_ci", "95% CI", str, False, "over images: these two networks on other images like these"),
    Column("kappa", "kappa with parent", num, True, "error consistency with the parent (1: the same mistakes)"),
    Column("churn", "churn %", pct, True, "eval images whose predicted class differs from the parent's"),
    Column("churn_ci", "95% CI", str),
    Column("right_to_wrong", "right → wrong %", pct, True, "the parent right, the compressed model wrong"),
    Column("shift_delta", "corrupted vs parent (pts)", _points, True, "mean top-1 over the corrupted sets"),
    Column("shift_churn", "churn corrupted %", pct, True, "mean over the corrupted sets"),
    Column("effective_robustness", "effective robustness", _points, True, "against the zoo's probit line, in points"),
    Column("worst_class", "largest class loss", str, False, "the class it loses most accuracy on against its parent"),
    Column("worst_class_delta", "(pts)", _points, True),
)


def compression_section(data: ReportData) -> list[Section]:
    if data.compression is None:
        return []
    frame, metrics = data.compression
    if frame.is_empty():
        return [Section("compression", "Compressed models against their parents", data.source("compression"),
                        tag("p", metrics["finding"] + " Declare one with source recipe:prune or recipe:quantize and "
                                 "train.parent: *<a zoo member> in params.yaml.", class_="note"))]
    rows = [r | {"how": describe(r), "delta_ci": _interval(r["top1_delta_lo"], r["top1_delta_hi"]),
                 "churn_ci": f"[{pct(r['churn_lo'])}, {pct(r['churn_hi'])}]",
                 "shift_delta": None if r["shift_top1"] is None else r["shift_top1"] - r["parent_shift_top1"],
                 "worst_class": group_name(data, r["worst_class"])} for r in frame.iter_rows(named=True)]
    points = plot_frame(frame)
    panels = {title: [(r["sparsity"], scale * r["value"], r["method"], r["model"])
                      for r in points.filter(pl.col("statistic") == stat).iter_rows(named=True)]
              for stat, (title, scale) in _PANELS.items() if (points["statistic"] == stat).any()}
    differs = metrics.get("rebuilt_parent_differs", [])
    body = join([
        tag("p", metrics["finding"], class_="headline"),
        *([tag("p", f"The parent rebuilt inside the fetch of {', '.join(differs)} has other weights than the zoo's "
                    "(trained on another machine or library version): their churn includes that difference.",
               class_="flag")] if differs else []),
        tag("figure", figures.against_sparsity(panels, methods=_METHODS),
            tag("figcaption", "Each compressed model against its parent (sparsity 0, churn 0, kappa 1): does the same "
                              "accuracy mean the same model? Churn and kappa say how many of its answers, and which "
                              "mistakes, it shares with the parent; the corrupted sets ask the same off the test set, "
                              "and the last panel how much it loses on the class it loses most on.")),
        tag("div", table(rows, _COLUMNS, sortable=True,
                         caption=f"Intervals: 95% over images ({metrics['n_boot']} paired resamples of the eval images): "
                                 "they speak for these two networks on other images like these, not for other "
                                 "compressions or other parents. The rest are point estimates."), class_="scroll"),
    ])
    return [Section("compression", "Compressed models against their parents", data.source("compression"), body,
                    "Pruned (global magnitude, optionally fine-tuned) and int8-quantised models derived from a zoo "
                    "member: a category of their own, outside the paper's five.")]
