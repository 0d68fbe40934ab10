"""What the ``shift`` stage writes, in one call: the zoo on every shifted set against the same eval images clean.

Per model and set: top-1, NLL and ECE (from the stored probabilities, clean ones from the predict stage); per model:
the mean corruption error relative to the base and the effective robustness on each set and on their mean;
per pair and set: error consistency (kappa) and the two-model ensemble's gain over its better member, so that a
reader sees whether the errors stay as (in)consistent off the test set as on it; per methodology category and set,
their means. Every number is a point estimate for these models on these images: the shifted sets are one
draw of each corruption's noise, and no interval is drawn over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from zooscope.artifacts import SHIFTED_SUMMARY, read_cards, read_predictions, shifted_file, unordered_pairs
from zooscope.config import Study, compression_roots, trained_apart
from zooscope.data.datasets import Dataset
from zooscope.ensemble.agreement import all_pairs_agreement
from zooscope.io import read_json
from zooscope.models.calibration import ece
from zooscope.shift.robustness import corruption_errors, effective_robustness
from zooscope.shift.sets import ShiftedSet, shift_positions, shifted_dataset, shifted_sets
from zooscope.vocab import CATEGORIES, pair_categories

__all__ = ["CLEAN", "MEAN", "ShiftTables", "shift_tables"]

CLEAN = "clean"  # the eval images the sets corrupt, uncorrupted
MEAN = "mean"  # the mean over the shifted sets


@dataclass(frozen=True)
class ShiftTables:
    """The shift stage's outputs.

    Attributes:
        models: ``artifacts/shift.parquet``, one row per model and set (``clean`` first): top1, nll, ece,
            effective robustness (null on ``clean``).
        pairs: ``artifacts/shift_pairs.parquet``, one row per pair and set: category, kappa, gain.
        metrics: ``metrics/shift.json``.
        plots: plot name (shift_accuracy, shift_kappa) -> its data.
        examples: uint8 [1 + sets, k, H, W(, 3)], the first k eval images clean and under each set.
        samples: ``artifacts/shift_samples.parquet``, the eval samples the sets corrupt (sample_id, label), in the
            order of every shifted set's rows.
    """

    models: pl.DataFrame
    pairs: pl.DataFrame
    metrics: dict[str, Any]
    plots: dict[str, pl.DataFrame]
    examples: np.ndarray
    samples: pl.DataFrame


def _clean_quality(probs: np.ndarray, labels: np.ndarray, *, bins: int) -> dict[str, float]:
    """NLL and ECE on the clean images, from the predict stage's float32 probabilities (a probability that rounded
    to 0 counts as the smallest positive float); the shifted sets' come from their logits (``shifted.json``)."""
    p = probs[np.arange(len(labels)), labels].astype(np.float64)
    return {"nll": float(-np.log(np.maximum(p, np.finfo(np.float64).tiny)).mean()), "ece": ece(probs, labels, bins=bins)}


def _pairs(probs: list[np.ndarray], labels: np.ndarray, ids: list[str], categories: list[str]) -> list[dict[str, Any]]:
    """kappa and ensemble gain of every pair of ``ids`` on one set, from each model's probabilities [n, C]."""
    correct = np.stack([p.argmax(1) == labels for p in probs])
    kappa = all_pairs_agreement(correct)["kappa"]
    acc = correct.mean(1)
    index = {mid: i for i, mid in enumerate(ids)}
    rows = []
    for (a, b), category in zip(unordered_pairs(ids), categories, strict=True):
        i, j = index[a], index[b]
        ens = float(((probs[i].astype(np.float64) + probs[j]).argmax(1) == labels).mean())
        rows.append({"model_a": a, "model_b": b, "category": category,
                     "kappa": float(kappa[i, j]), "gain": ens - max(acc[i], acc[j])})
    return rows


def _category_means(pairs: pl.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """category -> set -> mean kappa and gain over its pairs (categories in methodology order)."""
    means = pairs.group_by("category", "set").agg(pl.col("kappa").mean(), pl.col("gain").mean(), pairs=pl.len())
    out: dict[str, dict[str, dict[str, float]]] = {}
    for category in (c for c in CATEGORIES if c in set(means["category"])):
        rows = means.filter(pl.col("category") == category)
        out[category] = {r["set"]: {"kappa": r["kappa"], "gain": r["gain"], "pairs": r["pairs"]}
                         for r in rows.iter_rows(named=True)}
    return out


def _finding(categories: dict[str, dict[str, dict[str, float]]], corrupted: int, folders: list[str]) -> str:
    if not categories or not (corrupted or folders):
        return "No shifted sets were declared (shift.corruptions and shift.folders in params.yaml)."
    moves = []
    for name, what in ([(MEAN, f"the mean over {corrupted} corrupted sets")] if corrupted else []) + \
            [(f, f"the folder {f}") for f in folders]:
        parts = [f"{c} {v[CLEAN]['kappa']:.2f} -> {v[name]['kappa']:.2f}" for c, v in categories.items() if name in v]
        moves.append(f"on {what}: {', '.join(parts)}")
    return ("Off the test set, error consistency (kappa) of the pairs of each category moves from the clean eval images "
            f"to the shifted ones as follows ({'; '.join(moves)}).")


def _robustness(acc: np.ndarray, clean: np.ndarray, full: np.ndarray, sets: list[ShiftedSet],
                sizes: dict[str, int], fit_on: np.ndarray) -> dict[str, Any]:
    """The zoo's probit line (fit on the models of ``fit_on``: those not compressed) and every model's distance from it
    on each set (a corrupted set against the same images clean, a folder against the whole eval split) and on the mean
    of the corrupted sets."""
    robust: dict[str, Any] = {}
    for j, s in enumerate(sets):
        robust[s.name] = effective_robustness(clean if s.folder is None else full, acc[:, j], n=sizes[s.name],
                                              fit_on=fit_on)
    corrupted = [j for j, s in enumerate(sets) if s.folder is None]
    if corrupted:
        robust[MEAN] = effective_robustness(clean, acc[:, corrupted].mean(1), n=sizes[sets[corrupted[0]].name],
                                            fit_on=fit_on)
    return robust


def shift_tables(study: Study, dataset: Dataset, *, models: str | Path, predictions: str | Path,
                 shifted: str | Path, examples: int = 8) -> ShiftTables:
    """The zoo on the study's shifted sets.

    Args:
        study: the study (models in order, ``base``, ``shift`` and ``predict`` settings).
        dataset: its dataset (the eval subset's labels, the folders' classes, and the example images).
        models: folder of ``<id>/card.json``; predictions: the predict stage's folder (clean eval probabilities);
        shifted: the shifted stage's folder (``<id>/<set>.npy``).
        examples: how many eval images the examples show under each corruption.
    """
    ids, settings = list(study.models), study.shift
    sets = shifted_sets(settings)
    corrupted = [s for s in sets if s.folder is None]
    positions = shift_positions(dataset, size=settings.eval_size, seed=settings.seed)
    labels = {CLEAN: dataset.labels[positions]} | {s.name: dataset.labels[positions] for s in corrupted} | {
        s.name: shifted_dataset(dataset, positions, s, seed=settings.seed).labels for s in sets if s.folder is not None}
    clean = read_predictions(predictions, ids)
    rows = np.searchsorted(clean.sample_ids, dataset.sample_ids[positions])
    if not np.array_equal(clean.sample_ids[np.minimum(rows, len(clean.sample_ids) - 1)], dataset.sample_ids[positions]):
        raise ValueError(f"{predictions}: the predictions do not cover the shifted sets' eval samples; re-run predict")
    cards = read_cards(models, ids)
    categories = pair_categories(unordered_pairs(ids), {mid: card["tags"] for mid, card in cards.items()},
                                 roots=compression_roots(study.models))
    names = [CLEAN, *(s.name for s in sets)]
    probs = {CLEAN: [np.asarray(np.load(p, mmap_mode="r")[rows]) for p in clean.probs]}
    for s in sets:
        probs[s.name] = [np.load(shifted_file(Path(shifted) / mid, s.name), mmap_mode="r") for mid in ids]
    summaries = {mid: read_json(Path(shifted) / mid / SHIFTED_SUMMARY) for mid in ids}
    for i, mid in enumerate(ids):
        missing = [s.name for s in sets if s.name not in summaries[mid]["sets"]]
        wrong = [s.name for s in sets if len(probs[s.name][i]) != len(labels[s.name])]
        if missing or wrong:
            raise ValueError(f"{shifted}/{mid}: the shifted predictions do not match shift in the study (sets "
                             f"{', '.join(missing + wrong)}); re-run shifted@{mid}")

    acc = np.array([[float((p.argmax(1) == labels[name]).mean()) for p in probs[name]] for name in names]).T  # [m, 1+k]
    full = (clean.pred == clean.labels[None, :]).mean(1)  # every eval image: the clean side of a folder's line
    model_rows = [{"model": mid, "set": name, "top1": acc[i, j],
                   **(_clean_quality(probs[name][i], labels[name], bins=study.predict.ece_bins) if name == CLEAN else
                      {k: summaries[mid]["sets"][name][k] for k in ("nll", "ece")})}
                  for j, name in enumerate(names) for i, mid in enumerate(ids)]
    designed = np.isin(ids, trained_apart(study.models))
    robust = _robustness(acc[:, 1:], acc[:, 0], full, sets, {name: len(y) for name, y in labels.items()}, designed)
    for row in model_rows:
        fit = robust.get(row["set"])
        row["effective_robustness"] = None if fit is None else _finite(fit["effective"][ids.index(row["model"])])
    frame = pl.DataFrame(model_rows)

    pair_rows = [{**row, "set": name} for name in names for row in _pairs(probs[name], labels[name], ids, categories)]
    pairs = pl.DataFrame(pair_rows, schema={"model_a": pl.String, "model_b": pl.String, "category": pl.String,
                                            "kappa": pl.Float64, "gain": pl.Float64, "set": pl.String})
    if corrupted:
        mean = pairs.filter(pl.col("set").is_in([s.name for s in corrupted])).group_by(
            "model_a", "model_b", "category", maintain_order=True).agg(
            pl.col("kappa").mean(), pl.col("gain").mean()).with_columns(set=pl.lit(MEAN))
        pairs = pl.concat([pairs, mean.select(pairs.columns)])
    categories = _category_means(pairs)

    cols = [names.index(s.name) for s in corrupted]
    errors = corruption_errors(1 - acc[:, cols], 1 - acc[:, 0], corruptions=[s.corruption for s in corrupted],
                               base=ids.index(study.base)) if corrupted else None
    folder_sets = [s.name for s in sets if s.folder is not None]
    per_model = {}
    for i, mid in enumerate(ids):
        per_model[mid] = {
            "clean_top1": acc[i, 0], "eval_top1": float(full[i]),
            "mean_top1": float(acc[i, cols].mean()) if corrupted else None,
            "mce": _finite(errors["mce"][i]) if errors else None,
            "relative_mce": _finite(errors["relative_mce"][i]) if errors else None,
            "ce": {str(c): _finite(v) for c, v in zip(errors["names"], errors["ce"][i])} if errors else {},
            "effective_robustness": _finite(robust[MEAN]["effective"][i]) if corrupted else None,
            "folders": {f: {"top1": acc[i, names.index(f)], "effective_robustness": _finite(robust[f]["effective"][i])}
                        for f in folder_sets},
            "temperature": summaries[mid].get("temperature"),
        }
    metrics = {
        "sets": [s.name for s in sets], "corrupted_sets": [s.name for s in corrupted], "folder_sets": folder_sets,
        "corruptions": {k: list(v) for k, v in settings.corruptions.items()},
        "folders": {f: {"path": settings.folders[f], "images": len(labels[f])} for f in folder_sets},
        "samples": int(len(positions)), "seed": settings.seed, "base": study.base, "models": per_model,
        "lines": {name: {"slope": fit["slope"], "intercept": fit["intercept"]} for name, fit in robust.items()},
        "categories": categories, "finding": _finding(categories, len(corrupted), folder_sets),
    }
    line = robust.get(MEAN)
    accuracy_plot = pl.DataFrame({
        "model": ids, "clean_top1": acc[:, 0], "shifted_top1": acc[:, cols].mean(1) if corrupted else acc[:, 0],
        "line_top1": line["expected"] if line else np.full(len(ids), np.nan)})
    kappa_plot = pl.DataFrame([{"group": f"{c}: {'clean' if name == CLEAN else 'corrupted'}", "category": c, "set": name,
                                "kappa": by_set[name]["kappa"], "gain": by_set[name]["gain"]}
                               for c, by_set in categories.items() for name in (CLEAN, MEAN) if name in by_set],
                              schema={"group": pl.String, "category": pl.String, "set": pl.String, "kappa": pl.Float64,
                                      "gain": pl.Float64})
    first = positions[:examples]
    shown = [np.asarray(dataset.images[first])] if dataset.images is not None else []
    if shown:
        shown += [shifted_dataset(dataset, positions, s, seed=settings.seed).images[:len(first)] for s in corrupted]
    samples = pl.DataFrame({"sample_id": dataset.sample_ids[positions], "label": labels[CLEAN]})
    return ShiftTables(frame, pairs, metrics, {"shift_accuracy": accuracy_plot, "shift_kappa": kappa_plot},
                       np.stack(shown) if shown else np.zeros((0,), np.uint8), samples)


def _finite(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
