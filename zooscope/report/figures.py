"""The report's figures, drawn with matplotlib (Agg) and returned as inline SVG markup.

Each function takes plain arrays or frames and returns :class:`zooscope.report.page.Html` holding one
``<svg>`` element (text kept as text, so model and class names stay searchable; matplotlib escapes it).
Math-text parsing is off, so a ``$`` in a model or class name is drawn as it is.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import numpy as np

from zooscope.report.page import Html, esc
from zooscope.vocab import GROUPS

__all__ = ["svg", "category_bars", "gain_vs_kappa", "greedy_curve", "heatmap", "specialisation"]

#: One colour per group of zooscope.vocab.GROUPS: the base model, then each methodology category.
CATEGORY_COLORS = dict(zip(GROUPS, ("#444444", "#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756"), strict=True))
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


def category_bars(rows: Sequence[dict], *, stat: str = "kappa", xlabel: str = "error consistency (Cohen's kappa)") -> Html:
    """Horizontal bars of ``stat`` per methodology category, all pairs and accuracy-matched pairs side by
    side, with the 95% bootstrap interval (``rows``: category, subset, pairs, stat, stat_lo, stat_hi)."""
    plt = _plt()
    cats = list(dict.fromkeys(r["category"] for r in rows))
    fig, ax = plt.subplots(figsize=(6.2, 0.55 * len(cats) + 1.1))
    height = 0.38
    for j, (subset, hatch, alpha) in enumerate((("all", "", 0.95), ("matched", "//", 0.55))):
        for r in (r for r in rows if r["subset"] == subset):
            y = cats.index(r["category"]) + (j - 0.5) * height
            color = CATEGORY_COLORS.get(r["category"], "#888888")
            ax.barh(y, r[stat], height=height * 0.92, color=color, alpha=alpha, hatch=hatch, edgecolor="white")
            ax.errorbar(r[stat], y, xerr=[[r[stat] - r[f"{stat}_lo"]], [r[f"{stat}_hi"] - r[stat]]], fmt="none",
                        ecolor="#222222", elinewidth=1, capsize=2)
            ax.text(max(r[f"{stat}_hi"], 0) + 0.01, y, f"{r[stat]:.2f}  (n={r['pairs']})", va="center", fontsize=7.5)
    ax.set_yticks(range(len(cats)), cats)
    ax.invert_yaxis()
    ax.axvline(0, color="#999999", lw=0.8)
    ax.set_xlabel(xlabel)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="#777777", label="all pairs"), Patch(facecolor="#bbbbbb", hatch="//", label="accuracy-matched")],
              loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, fontsize=7.5, frameon=False)
    ax.set_xlim(min(0, min((r[f"{stat}_lo"] for r in rows), default=0)) - 0.02,
                max((r[f"{stat}_hi"] for r in rows), default=1) + 0.22)
    return svg(fig, label=f"{stat} by methodology category")


def gain_vs_kappa(kappa: np.ndarray, gain: np.ndarray, categories: Sequence[str], names: Sequence[str]) -> Html:
    """Scatter of ensemble gain against kappa, one point per pair, coloured by category; the most
    complementary pair (highest gain) is labelled."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for cat in dict.fromkeys(categories):
        mask = np.array([c == cat for c in categories])
        ax.scatter(kappa[mask], 100 * gain[mask], s=26, color=CATEGORY_COLORS.get(cat, "#888888"), label=cat,
                   edgecolor="white", linewidth=0.5)
    if len(gain):
        best = int(np.argmax(gain))
        ax.annotate(names[best], (kappa[best], 100 * gain[best]), xytext=(6, 4), textcoords="offset points", fontsize=7.5)
    ax.axhline(0, color="#999999", lw=0.8)
    ax.set_xlabel("error consistency (kappa)")
    ax.set_ylabel("ensemble gain over the better member (points)")
    ax.legend(fontsize=7.5, frameon=False)
    return svg(fig, label="ensemble gain against kappa")


def greedy_curve(accuracy: Sequence[float], added: Sequence[str], *, best_single: float) -> Html:
    """Accuracy of the greedy forward ensemble against its size, each point labelled with the model added."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    sizes = np.arange(1, len(accuracy) + 1)
    acc = 100 * np.asarray(accuracy, float)
    ax.plot(sizes, acc, marker="o", color="#2763a8")
    for x, y, name in zip(sizes, acc, added):
        ax.annotate(name, (x, y), xytext=(3, -10), textcoords="offset points", fontsize=7, rotation=-30)
    ax.axhline(100 * best_single, color="#999999", lw=0.8, ls="--")
    ax.set_xticks(sizes)
    ax.set_xlabel("ensemble size")
    ax.set_ylabel("eval accuracy (%)")
    ax.margins(y=0.15)
    return svg(fig, label="greedy ensemble accuracy against size")


def heatmap(matrix: np.ndarray, names: Sequence[str], groups: Sequence[str], *, label: str, vmin: float | None = None,
            vmax: float | None = None, cmap: str = "viridis") -> Html:
    """A square heatmap of ``matrix`` [n, n] with its values written in the cells when the zoo is small,
    model names on both axes, and lines between the ``groups`` (consecutive runs of equal values)."""
    plt = _plt()
    n = len(names)
    size = min(7.5, 2.2 + 0.34 * n)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=7.5)
    ax.set_yticks(range(n), names, fontsize=7.5)
    ax.spines[["left", "bottom"]].set_visible(False)
    for i in range(1, n):
        if groups[i] != groups[i - 1]:
            ax.axhline(i - 0.5, color="white", lw=1.6)
            ax.axvline(i - 0.5, color="white", lw=1.6)
    if n <= 12:  # values in the cells while they stay legible
        lo, hi = np.nanmin(matrix), np.nanmax(matrix)
        for i in range(n):
            for j in range(n):
                v = matrix[i, j]
                if np.isfinite(v):
                    dark = (v - lo) / (hi - lo + 1e-12) < 0.55
                    ax.text(j, i, f"{v:.2f}".lstrip("0") if 0 <= v < 1 else f"{v:.1f}", ha="center", va="center",
                            fontsize=6.5 if n > 8 else 7.5, color="white" if dark else "#111111")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02).set_label(label)
    return svg(fig, label=label)


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
