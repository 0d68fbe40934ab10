"""Overlapping features: do two models' embeddings carry information the other lacks? (docs/science.md section 6)

A linear probe on the concatenated embeddings of two models is compared with each model's own probe,
under the same protocol and budget (``zooscope.models.probe.fit_probe``: train split, L2 chosen on the
calibration split, accuracy on eval). The subsampled mixes keep the total width fixed and take a share of
it from each model: a mix that beats both ends means the features overlap rather than one containing
the other (Gontijo-Lopes et al. 2022).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from zooscope.data.datasets import SPLITS
from zooscope.models.probe import fit_probe
from zooscope.vocab import CATEGORIES

__all__ = ["concat_probe_acc", "mix_curve", "extreme_pairs", "outermost"]

Splits = Mapping[str, np.ndarray]


def concat_probe_acc(parts: Sequence[Splits], labels: Splits, *, num_classes: int, l2_grid: Sequence[float],
                     max_iter: int, tol: float) -> float:
    """Eval accuracy of a linear probe on the features of ``parts`` side by side.

    Args:
        parts: per model, split name -> float [n_split, d_i] (the same samples in every part).
        labels: split name -> int [n_split].
        num_classes, l2_grid, max_iter, tol: the per-model probe's settings (``study.probe``).
    """
    x = {s: np.concatenate([np.asarray(p[s], np.float32) for p in parts], axis=1) for s in SPLITS}
    probe = fit_probe(x["train"], labels["train"], x["calibration"], labels["calibration"], num_classes=num_classes,
                      l2_grid=tuple(l2_grid), max_iter=max_iter, tol=tol)
    return float((probe.logits(x["eval"]).argmax(1) == labels["eval"]).mean())


def mix_curve(a: Splits, b: Splits, labels: Splits, *, fractions: Sequence[float], dim: int | None, seed: int,
              num_classes: int, l2_grid: Sequence[float], max_iter: int, tol: float) -> tuple[int, list[float]]:
    """Probe accuracy of fixed-width mixes of two embeddings.

    For each share f of ``fractions``, round(f * dim) random columns of ``a`` and the rest from ``b``
    (seeded, drawn afresh for each share) are probed with :func:`concat_probe_acc`.

    Args:
        a, b: split name -> float [n_split, d_a] and [n_split, d_b].
        dim: the total width; None or above the smaller width: the smaller width (so 0 and 1 are possible).

    Returns:
        (the width used, one accuracy per share).
    """
    widths = a["train"].shape[1], b["train"].shape[1]
    dim = min(widths) if dim is None else min(dim, *widths)
    rng = np.random.default_rng(seed)
    accs = []
    for share in fractions:
        k = round(share * dim)
        cols_a = np.sort(rng.choice(widths[0], k, replace=False))
        cols_b = np.sort(rng.choice(widths[1], dim - k, replace=False))
        parts = [{s: a[s][:, cols_a] for s in SPLITS}, {s: b[s][:, cols_b] for s in SPLITS}]
        accs.append(concat_probe_acc(parts, labels, num_classes=num_classes, l2_grid=l2_grid, max_iter=max_iter,
                                     tol=tol))
    return dim, accs


def extreme_pairs(frame: pl.DataFrame, *, score: str) -> list[tuple[str, str]]:
    """The most and the least similar pair (by ``score``) of each methodology category of
    :data:`zooscope.vocab.CATEGORIES`, in the frame's order (a compressed model's pairs are left out: a model and its
    own compression would be every zoo's most similar pair, and say nothing about methodology).

    Args:
        frame: one row per pair with ``model_a``, ``model_b``, ``category`` and the ``score`` column.
    """
    ranked = frame.with_row_index("row").filter(pl.col(score).is_not_nan() & pl.col("category").is_in(CATEGORIES))
    chosen = set()
    for _, group in ranked.group_by("category"):
        chosen |= {group["row"][group[score].arg_max()], group["row"][group[score].arg_min()]}
    picked = frame.with_row_index("row").filter(pl.col("row").is_in(sorted(chosen)))
    return list(zip(picked["model_a"], picked["model_b"], strict=True))


def outermost(frame: pl.DataFrame, pairs: Sequence[tuple[str, str]], *, score: str,
              limit: int | None) -> list[tuple[str, str]]:
    """At most ``limit`` of ``pairs`` (all for None): the most similar by ``score``, the least similar, the
    second most, the second least, ..., returned in the order of ``pairs``.

    Args:
        frame: one row per pair with ``model_a``, ``model_b`` and the ``score`` column (every pair of ``pairs``).
    """
    if limit is None or limit >= len(pairs):
        return list(pairs)
    scores = dict(zip(zip(frame["model_a"], frame["model_b"]), frame[score], strict=True))
    ranked = sorted(pairs, key=lambda pair: -scores[pair])
    picked = {ranked[i // 2] if i % 2 == 0 else ranked[-(i // 2) - 1] for i in range(limit)}
    return [pair for pair in pairs if pair in picked]
