"""The report's figures, drawn with matplotlib (Agg) and returned as inline SVG markup.

Each function takes plain arrays or frames and returns :class:`zooscope.report.page.Html` holding one
``<svg>`` element (text kept as text, so model and class names stay searchable; matplotlib escapes it).
Math-text parsing is off, so a ``$`` in a model or class name is drawn as it is.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from zooscope.report.page import Html, esc
from zooscope.vocab import COMPRESSED_OTHER, COMPRESSION, GROUPS, SUBSETS, group_rank

__all__ = ["Scale", "svg", "category_intervals", "category_scatter", "greedy_curve", "heatmap", "class_heatmap",
           "reliability_grid", "line_panels", "specialisation", "accuracy_on_the_line", "against_sparsity"]

#: One colour per group of zooscope.vocab.GROUPS (the base model, then each methodology category) and for the pairs of
#: a compressed model.
CATEGORY_COLORS = dict(zip(GROUPS, ("#444444", "#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756"), strict=True)) | {
    COMPRESSION: "#9d755d", COMPRESSED_OTHER: "#bab0ac"}
_RC = {"text.parse_math": False, "svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
       "axes.spines.right": False, "svg.hashsalt": "zooscope", "font.family": "DejaVu Sans"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(_RC)
    return plt


def svg(fig, *, label: str) -> Html:
    """``fig`` as an ``<svg>`` element that scales with its container (``label``: its accessible name)."""
    plt = _plt()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    # keep the viewBox, let CSS set the size; name the figure for screen readers
    head_end = text.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", text[:head_end])
    return Html(f'{head} role="img" aria-label="{esc(label)}"{text[head_end:]}')


@dataclass(frozen=True)
class Scale:
    """The colour scale of one quantity, shared by every heatmap of the page that shows it.

    Attributes:
        label: what the colour shows and its direction (the colour bar's text); vmin, vmax: its range;
        cmap: a matplotlib colour map name.
    """

    label: str
    vmin: float
    vmax: float
    cmap: str = "viridis"

    @classmethod
    def spanning(cls, values: np.ndarray, *, label: str, cmap: str = "viridis", step: float = 0.05) -> Scale:
        """The scale spanning the finite ``values`` (every off-diagonal cell the page shows), widened to multiples
        of ``step``, so that the spread between pairs, not the diagonal, sets the colours."""
        v = np.asarray(values, np.float64)
        v = v[np.isfinite(v)]
        if not len(v):
            return cls(label, 0.0, 1.0, cmap)
        lo, hi = np.floor(v.min() / step) * step, np.ceil(v.max() / step) * step
        return cls(label, float(lo), float(hi if hi > lo else lo + step), cmap)


def _interval_rows(ax, rows: Sequence[dict], *, stat: str, factor: float, subsets: Sequence[str]) -> None:
    """Draw one dot-and-interval row per (category, subset): the dot at the mean, a thick line over the eval-image
    interval, a thin one over the models-and-images interval."""
    cats = list(dict.fromkeys(r["category"] for r in rows))
    step = 0.8 / max(len(subsets), 1)
    for j, subset in enumerate(subsets):
        for r in (r for r in rows if r["subset"] == subset):
            y = cats.index(r["category"]) + (j - (len(subsets) - 1) / 2) * step
            color = CATEGORY_COLORS.get(r["category"], "#888888")
            mean = factor * r[stat]
            if r.get(f"{stat}_zoo_lo") is not None:
                ax.plot([factor * r[f"{stat}_zoo_lo"], factor * r[f"{stat}_zoo_hi"]], [y, y], color=color, lw=1.1,
                        alpha=0.8, solid_capstyle="butt")
            ax.plot([factor * r[f"{stat}_lo"], factor * r[f"{stat}_hi"]], [y, y], color=color, lw=4.2, alpha=0.55,
                    solid_capstyle="butt")
            ax.plot([mean], [y], marker="o" if j == 0 else "D", ms=5.5, color=color,
                    markerfacecolor=color if j == 0 else "white", markeredgewidth=1.3)
            ax.annotate(f"{mean:.2f}", (mean, y), xytext=(0, 4.5), textcoords="offset points", ha="center",
                        fontsize=7, color="#333333")
    ax.set_yticks(range(len(cats)), cats)
    if not ax.yaxis_inverted():  # panels share the y axis: invert it once
        ax.invert_yaxis()


def category_intervals(rows: Sequence[dict], *, stats: Sequence[tuple[str, str, float]],
                       subsets: Sequence[str] = ("all", "matched")) -> Html:
    """Dot-and-interval plots, one panel per statistic, of a statistic's mean per methodology category.

    Args:
        rows: :func:`zooscope.summary.category_rows` (category, subset, ``stat``, ``stat_lo/_hi`` over eval images,
            ``stat_zoo_lo/_hi`` over models and images).
        stats: per panel ``(stat, axis label, factor)``; the factor scales the values (100: fractions to points).
        subsets: the pair subsets drawn (keys of :data:`zooscope.vocab.SUBSETS`, at most two), one row per category
            each (dots: the first; diamonds: the second).

    The axis spans the intervals, not zero, so the spread between categories is what the eye sees.
    """
    plt = _plt()
    rows = [r for r in rows if r["subset"] in subsets]  # the axes span what is drawn
    cats = list(dict.fromkeys(r["category"] for r in rows))
    fig, axes = plt.subplots(1, len(stats), figsize=(4.1 * len(stats), 0.62 * len(cats) + 1.2), sharey=True,
                             squeeze=False)
    for ax, (stat, xlabel, factor) in zip(axes[0], stats):
        _interval_rows(ax, rows, stat=stat, factor=factor, subsets=subsets)
        ends = [factor * v for r in rows for side in ("lo", "hi")
                for v in (r[f"{stat}_{side}"], r.get(f"{stat}_zoo_{side}")) if v is not None]
        lo, hi = min(ends), max(ends)
        pad = 0.06 * (hi - lo or 1.0)
        ax.set_xlim(lo - pad, hi + pad)
        if lo < 0 < hi:
            ax.axvline(0, color="#999999", lw=0.8, ls="--")
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", color="#eeeeee", lw=0.6)
    from matplotlib.lines import Line2D

    markers = [Line2D([], [], color="#555555", lw=0, marker="o" if i == 0 else "D",
                      markerfacecolor="#555555" if i == 0 else "white", label=SUBSETS[s].label)
               for i, s in enumerate(subsets[:2])]
    handles = [*markers, Line2D([], [], color="#555555", lw=4.2, alpha=0.55, label="95% CI over eval images"),
               Line2D([], [], color="#555555", lw=1.1, label="95% CI over models and images")]
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.02, 1.0), ncols=4, fontsize=7.5, frameon=False)
    fig.tight_layout()
    return svg(fig, label="statistics by methodology category with intervals")


def category_scatter(x: np.ndarray, y: np.ndarray, categories: Sequence[str], *, xlabel: str, ylabel: str,
                     names: Sequence[str] = (), labelled: Sequence[int] = (), hline: float | None = None) -> Html:
    """A scatter of ``y`` against ``x`` [n], one point per pair or model, coloured by category, with a least-squares
    line when there are enough points; the points at indices ``labelled`` carry their ``names``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    for cat in dict.fromkeys(categories):
        mask = np.array([c == cat for c in categories])
        ax.scatter(x[mask], y[mask], s=26, color=CATEGORY_COLORS.get(cat, "#888888"), label=cat, edgecolor="white",
                   linewidth=0.5, zorder=3)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() >= 3 and np.ptp(x[ok]) > 0:
        slope, icpt = np.polyfit(x[ok], y[ok], 1)
        xs = np.array([x[ok].min(), x[ok].max()])
        ax.plot(xs, slope * xs + icpt, color="#999999", lw=0.9, zorder=2)
    for i in labelled:
        ax.annotate(names[i], (x[i], y[i]), xytext=(5, 4), textcoords="offset points", fontsize=7.5)
    if hline is not None:
        ax.axhline(hline, color="#999999", lw=0.8, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7.5, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return svg(fig, label=f"{ylabel} against {xlabel}")


def greedy_curve(accuracy: Sequence[float], added: Sequence[str], *, best_single: float) -> Html:
    """Accuracy of the greedy forward ensemble against its size; the model each step adds labels the x axis."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    sizes = np.arange(1, len(accuracy) + 1)
    acc = 100 * np.asarray(accuracy, float)
    ax.plot(sizes, acc, marker="o", color="#2763a8")
    ax.axhline(100 * best_single, color="#999999", lw=0.8, ls="--")
    ax.set_xticks(sizes, [f"{k}: +{name}" for k, name in zip(sizes, added)], rotation=40, ha="right", fontsize=7.5)
    ax.set_xlabel("ensemble size: the model each step adds")
    ax.set_ylabel("eval accuracy (%)")
    ax.margins(y=0.15)
    return svg(fig, label="greedy ensemble accuracy against size")


def _cell_text(v: float) -> str:
    return f"{v:.2f}".replace("0.", ".", 1) if abs(v) < 1 else f"{v:.1f}"


def heatmap(matrix: np.ndarray, names: Sequence[str], groups: Sequence[str] | None, *, scale: Scale,
            col_names: Sequence[str] | None = None) -> Html:
    """A heatmap of ``matrix`` [n, m] on ``scale``, model names on both axes, lines between the ``groups`` of the
    rows and columns (consecutive runs of equal values; None: no lines), the diagonal of a square matrix masked
    (grey) and the values written in the cells while they stay legible (up to 16 columns)."""
    plt = _plt()
    matrix = np.array(matrix, np.float64)
    n, m = matrix.shape
    cols = list(col_names) if col_names is not None else list(names)
    if col_names is None:
        np.fill_diagonal(matrix, np.nan)
    size = min(7.5, 2.2 + 0.34 * max(n, m))
    fig, ax = plt.subplots(figsize=(size * m / max(n, m) + 1.4, size * n / max(n, m) + 0.3))
    cmap = plt.get_cmap(scale.cmap).with_extremes(bad="#e6e6e6")
    im = ax.imshow(matrix, cmap=cmap, vmin=scale.vmin, vmax=scale.vmax, interpolation="nearest", aspect="auto")
    ax.set_xticks(range(m), cols, rotation=60, ha="right", fontsize=7.5)
    ax.set_yticks(range(n), names, fontsize=7.5)
    ax.spines[["left", "bottom"]].set_visible(False)
    if groups is not None:
        for i in range(1, n):
            if groups[i] != groups[i - 1]:
                ax.axhline(i - 0.5, color="white", lw=1.6)
                ax.axvline(i - 0.5, color="white", lw=1.6)
    if m <= 16:
        for i in range(n):
            for j in range(m):
                v = matrix[i, j]
                if np.isfinite(v):
                    r, g, b, _ = cmap((v - scale.vmin) / (scale.vmax - scale.vmin or 1.0))
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                    ax.text(j, i, _cell_text(v), ha="center", va="center", fontsize=5.8 if m > 10 else 7.5,
                            color="white" if dark else "#111111")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02).set_label(scale.label)
    return svg(fig, label=scale.label)


def class_heatmap(matrix: np.ndarray, models: Sequence[str], classes: Sequence[str], *, label: str) -> Html:
    """Models [rows] x classes [columns] of a signed quantity (e.g. per-class accuracy minus the zoo's mean, in
    points) on a diverging scale centred on zero."""
    v = np.asarray(matrix, np.float64)
    bound = float(np.nanmax(np.abs(v))) if np.isfinite(v).any() else 1.0
    return heatmap(v, models, None, scale=Scale(label, -bound, bound, "RdBu"), col_names=classes)


def reliability_grid(curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], *, group_of: Mapping[str, str],
                     titles: Mapping[str, str], columns: int = 4) -> Html:
    """Reliability diagrams, one small panel per model: per confidence bin, the accuracy (bars) against the
    diagonal of perfect calibration (``curves``: model -> :func:`zooscope.models.calibration.reliability`'s
    count, correct sum and confidence sum per bin), coloured by the model's group (``group_of``), each panel titled
    ``titles[model]``."""
    plt = _plt()
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.0 * rows + 0.2), sharex=True, sharey=True,
                             squeeze=False)
    for ax in axes.ravel()[len(curves):]:
        ax.set_visible(False)
    for ax, (name, (count, correct, _)) in zip(axes.ravel(), curves.items()):
        bins = len(count)
        edges = np.linspace(0, 1, bins + 1)
        filled = count > 0
        acc = np.divide(correct, count, out=np.zeros(bins), where=filled)
        ax.bar(edges[:-1][filled], acc[filled], width=1 / bins, align="edge", alpha=0.8, edgecolor="white",
               linewidth=0.4, color=CATEGORY_COLORS.get(group_of.get(name), "#888888"))
        ax.plot([0, 1], [0, 1], color="#444444", lw=0.8, ls="--")
        ax.set_title(titles[name], fontsize=7.5)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=6.5)
    fig.supxlabel("confidence (max probability, temperature-scaled)", fontsize=8)
    fig.supylabel("accuracy in the bin", fontsize=8)
    fig.tight_layout()
    return svg(fig, label="reliability diagrams")


def line_panels(panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], *, group_of: Mapping[str, str],
                xlabel: str, ylabel: str) -> Html:
    """One panel per entry of ``panels`` (title -> {line name -> (x [k], y [k])}) on shared axes, each line
    coloured by its group (``group_of``: line name -> category), one legend entry per group."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.3), sharey=True, squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for name, (x, y) in lines.items():
            ax.plot(x, y, marker="o", ms=3, lw=1.1, alpha=0.85, color=CATEGORY_COLORS.get(group_of.get(name), "#888888"))
        ax.set_title(title, fontsize=8.5)
        ax.set_xlabel(xlabel)
        ax.grid(color="#eeeeee", lw=0.6)
    axes[0][0].set_ylabel(ylabel)
    from matplotlib.lines import Line2D

    groups = sorted({group_of.get(name, "other") for lines in panels.values() for name in lines}, key=group_rank)
    fig.legend(handles=[Line2D([], [], color=CATEGORY_COLORS.get(g, "#888888"), label=g) for g in groups],
               loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7.5, frameon=False)
    fig.tight_layout()
    return svg(fig, label=f"{ylabel} against {xlabel}")


def specialisation(classes: Sequence[str], acc_a: np.ndarray, acc_b: np.ndarray, acc_ens: np.ndarray, *,
                   name_a: str, name_b: str) -> Html:
    """Per-class accuracy of two members and their ensemble: which member is better on which class."""
    plt = _plt()
    n = len(classes)
    fig, ax = plt.subplots(figsize=(min(11, 1.6 + 0.55 * n), 3.4))
    x = np.arange(n)
    w = 0.27
    ax.bar(x - w, 100 * acc_a, w, label=name_a, color="#4c78a8")
    ax.bar(x, 100 * acc_b, w, label=name_b, color="#f58518")
    ax.bar(x + w, 100 * acc_ens, w, label="ensemble", color="#54a24b")
    low = float(np.nanmin(np.concatenate([acc_a, acc_b, acc_ens]))) if n else 0.0
    ax.set_ylim(max(0.0, 100 * low - 8), 101)
    ax.set_xticks(x, classes, rotation=30 if max((len(c) for c in classes), default=0) > 4 else 0, ha="right")
    ax.set_ylabel("per-class accuracy (%)")
    ax.legend(fontsize=7.5, frameon=False, ncols=3, loc="lower left", bbox_to_anchor=(0, 1.0))
    return svg(fig, label="per-class specialisation")


def accuracy_on_the_line(clean: np.ndarray, shifted: np.ndarray, expected: np.ndarray, categories: Sequence[str], *,
                         names: Sequence[str], xlabel: str, ylabel: str) -> Html:
    """Shifted against clean accuracy [m] (in %), one point per model coloured by category and named, the zoo's line
    (``expected`` [m]: the shifted accuracy the probit fit predicts for each clean accuracy) and the diagonal."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    x, y, e = (100 * np.asarray(v, np.float64) for v in (clean, shifted, expected))
    for cat in dict.fromkeys(categories):
        mask = np.array([c == cat for c in categories])
        ax.scatter(x[mask], y[mask], s=26, color=CATEGORY_COLORS.get(cat, "#888888"), label=cat, edgecolor="white",
                   linewidth=0.5, zorder=3)
    order = np.argsort(x)
    if np.isfinite(e).all():
        ax.plot(x[order], e[order], color="#555555", lw=1.0, zorder=2, label="the zoo's line (probit fit)")
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    ax.plot([lo, hi], [lo, hi], color="#bbbbbb", lw=0.8, ls="--", zorder=1, label="no drop")
    for i, name in enumerate(names):
        ax.annotate(name, (x[i], y[i]), xytext=(4, 3), textcoords="offset points", fontsize=6.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7.5, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return svg(fig, label=f"{ylabel} against {xlabel}")


def against_sparsity(panels: Mapping[str, Sequence[tuple[float, float, str, str]]], *, methods: Mapping[str, str]) -> Html:
    """One panel per statistic (title -> points (sparsity, value, method, model name)): each compressed model and its
    parent (sparsity 0) against sparsity, a marker per method (``methods``: method -> its legend label), named."""
    plt = _plt()
    markers = {"parent": ("o", "#333333"), "prune": ("s", "#4c78a8"), "prune+fine-tune": ("D", "#54a24b"),
               "quantize": ("^", "#e45756")}
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.7 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, points) in zip(axes.flat, panels.items()):
        for method in dict.fromkeys(p[2] for p in points):
            mine = [p for p in points if p[2] == method]
            marker, color = markers.get(method, ("x", "#888888"))
            ax.scatter([100 * p[0] for p in mine], [p[1] for p in mine], marker=marker, color=color, s=28, zorder=3,
                       label=methods.get(method, method))
        for x, y, _, name in points:
            ax.annotate(name, (100 * x, y), xytext=(3, 3), textcoords="offset points", fontsize=6)
        ax.set_title(title, fontsize=8.5)
        ax.set_xlabel("sparsity (% of conv and linear weights zero)", fontsize=7.5)
        ax.grid(color="#eeeeee", lw=0.6)
        ax.tick_params(labelsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if len(panels) < rows * cols:  # the legend in the first empty cell
        spare = axes.flat[len(panels)]
        spare.set_visible(True)
        spare.axis("off")
        spare.legend(handles, labels, loc="center", fontsize=8, frameon=False)
    else:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7.5, frameon=False)
    fig.tight_layout()
    return svg(fig, label="compressed models against sparsity")
