"""The report's figure helpers: colour scales shared across the page, masked diagonals and cell values."""

from __future__ import annotations

import re

import numpy as np

from zooscope.report import figures


def test_a_scale_spans_the_values_not_the_diagonal():
    scale = figures.Scale.spanning(np.array([0.61, np.nan, 0.77, 0.7]), label="kappa")
    assert (round(scale.vmin, 10), round(scale.vmax, 10)) == (0.6, 0.8)
    # all values equal: still a range
    flat = figures.Scale.spanning(np.array([0.5, 0.5]), label="x")
    assert flat.vmax > flat.vmin
    nothing = figures.Scale.spanning(np.array([np.nan]), label="x")
    assert (nothing.vmin, nothing.vmax) == (0.0, 1.0)


def _texts(svg: str) -> list[str]:
    return [t.strip() for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


def test_a_heatmap_masks_the_diagonal_and_writes_every_other_cell():
    matrix = np.array([[1.0, 0.61, 0.72], [0.61, 1.0, 0.43], [0.72, 0.43, 1.0]])
    svg = figures.heatmap(matrix, ["a", "b", "c"], ["base", "reinit", "reinit"],
                          scale=figures.Scale(label="kappa: brighter = more", vmin=0.4, vmax=0.8))
    cells = [t for t in _texts(svg) if t.startswith(".")]
    assert sorted(cells) == sorted([".61", ".72", ".61", ".43", ".72", ".43"])  # six cells, no diagonal 1.0
    assert "kappa: brighter = more" in svg
    assert matrix[0, 0] == 1.0  # the caller's matrix is left alone
