"""The changes between two revisions of a study (:mod:`zooscope.diff`) as report sections: one section
in the study report (against ``report.compare_to``), and the whole page ``reports/diff.html``."""

from __future__ import annotations

from zooscope.artifacts import MODEL_METRICS, PARAMS, STUDY_METRICS
from zooscope.diff import StudyDiff
from zooscope.report.data import ReportData
from zooscope.report.page import Column, Html, Section, join, render_page, table, tag

__all__ = ["changes_section", "diff_body", "render_diff"]

_SOURCES = (PARAMS, f"{MODEL_METRICS}/<model>.json", STUDY_METRICS)


def _value(v: float) -> str:
    return f"{v:.4f}"


def _delta(v: float) -> Html:
    return tag("span", f"{v:+.4f}", class_="up" if v > 0 else "down" if v < 0 else None)


def diff_body(diff: StudyDiff) -> Html:
    """Models added, removed and changed; the per-model metric changes; the per-category changes, those
    outside the older revision's 95% bootstrap interval flagged."""
    lists = join(tag("li", tag("b", f"{what}: "), join((tag("code", m) for m in ids), ", ") if ids else "none")
                 for what, ids in (("added", diff.added), ("removed", diff.removed), ("changed declaration", diff.changed)))
    model_cols = [Column("model", "model"), Column("metric", "metric"), Column("old", diff.rev_a, _value, True),
                  Column("new", diff.rev_b, _value, True), Column("delta", "change", _delta, True)]
    moved = [r | {"interval": f"[{r['old_lo']:.4f}, {r['old_hi']:.4f}]" if r["old_lo"] is not None else None,
                  "flag": "beyond the interval" if r["beyond"] else ""} for r in diff.moved]
    cat_cols = [Column("subset", "pairs"), Column("category", "category"), Column("stat", "statistic"),
                Column("old", diff.rev_a, _value, True), Column("new", diff.rev_b, _value, True),
                Column("delta", "change", _delta, True), Column("interval", f"95% interval at {diff.rev_a}"),
                Column("flag", "", lambda v: tag("span", v, class_="flag"))]
    return join([
        tag("p", diff.summary()),
        tag("ul", lists),
        tag("h3", "Per-model metrics"),
        tag("div", table(diff.model_changes, model_cols, sortable=True), class_="scroll") if diff.model_changes
        else tag("p", "No per-model metric changed.", class_="note"),
        tag("h3", "Per methodology category"),
        tag("div", table(moved, cat_cols, sortable=True), class_="scroll") if moved
        else tag("p", "No per-category statistic changed.", class_="note"),
    ])


def changes_section(data: ReportData) -> list[Section]:
    diff = data.changes
    if diff is None:
        return []
    if isinstance(diff, str):  # nothing to compare with (the normal state after a first run): no section
        return []
    return [Section("changes", f"Changes since {diff.rev_a}", _SOURCES, diff_body(diff),
                    f"This study's results ({diff.rev_b}) against those committed at {diff.rev_a}; "
                    "the command zooscope diff REV_A REV_B compares any two revisions.")]


def render_diff(diff: StudyDiff) -> str:
    """``reports/diff.html``: the diff as a self-contained page."""
    section = Section("diff", f"{diff.rev_a} → {diff.rev_b}", _SOURCES, diff_body(diff))
    return render_page("zooscope diff", f"what changed in the study from {diff.rev_a} to {diff.rev_b}", [section])
