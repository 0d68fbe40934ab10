"""The study report: ``reports/index.html``, one self-contained page built from the study's artifacts.

The report is a list of :class:`Section` objects (an anchor, a title, the artifacts its numbers come
from, and a body of trusted markup built with :mod:`zooscope.report.page`). Sections come from
*builders*: functions ``ReportData -> list[Section]`` (an empty list when their inputs are missing),
one module per group of sections. ``BUILDERS`` lists them in page order; another module adds its
sections by passing ``builders=(*BUILDERS, my_sections)`` to :func:`build_report`, or by appending its
builder to ``BUILDERS`` here. What the summary says (:mod:`zooscope.summary`) is kept apart from how it
is drawn, so the Prefect flow publishes the same facts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from zooscope.report.changes import changes_section
from zooscope.report.compression_sections import compression_section
from zooscope.report.data import ReportData, load_report_data
from zooscope.report.group_sections import subgroups_section
from zooscope.report.mistake_sections import mistake_sections
from zooscope.report.provenance import provenance
from zooscope.report.shift_sections import shift_sections
from zooscope.report.page import Html, Section, render_page
from zooscope.report.pair_sections import complementary_section, consensus_errors_section, heatmap_sections, pairs_section
from zooscope.report.partner_sections import partners_section
from zooscope.report.study_sections import (calibration_section, categories_section, ensembles_section,
                                            image_split_section, models_section, specialisation_section, summary_section)

__all__ = ["BUILDERS", "Section", "Html", "ReportData", "SectionBuilder", "build_sections", "build_report",
           "load_report_data"]

SectionBuilder = Callable[[ReportData], list[Section]]

#: The report's section builders, in page order.
BUILDERS: tuple[SectionBuilder, ...] = (
    summary_section, changes_section, categories_section, models_section, calibration_section, ensembles_section,
    image_split_section, heatmap_sections, pairs_section, specialisation_section, subgroups_section,
    complementary_section, partners_section, consensus_errors_section, mistake_sections, shift_sections,
    compression_section,
)


def build_sections(data: ReportData, builders: Sequence[SectionBuilder] = BUILDERS) -> list[Section]:
    """Every builder's sections, in order; anchors must be unique."""
    sections = [s for build in builders for s in build(data)]
    seen: set[str] = set()
    for s in sections:
        if s.id in seen:
            raise ValueError(f"two report sections have the anchor {s.id!r}")
        seen.add(s.id)
    return sections


def build_report(data: ReportData, builders: Sequence[SectionBuilder] = BUILDERS) -> str:
    """The report page (HTML text)."""
    study = data.study
    subtitle = (f"{study.dataset.source} · {len(study.models)} models · base {study.base} · "
                f"{len(data.predictions.labels):,} eval samples")
    return render_page("zooscope study report", subtitle, build_sections(data, builders), footer=provenance(study))
