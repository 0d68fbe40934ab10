"""The ensemble stage's per-pair tables: agreement of errors and pair ensembles for every pair of a zoo.

Statistics that are cheap for the whole zoo (accuracies, kappa and its bound, error inconsistency and
correlation, disagreement, the members' bootstrap counts) are recomputed every run by matrix products
(``zooscope.ensemble.agreement``); the ensembles and their per-class and bootstrap counts, which cost a pass over
both models' probabilities, come from ``zooscope.ensemble.blockwise`` through the per-pair cache
(``zooscope.paircache``), keyed by the two probability files.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from zooscope.ensemble import _exact_argmax, agreement, blockwise, bootstrap
from zooscope.ensemble.agreement import all_pairs_agreement, all_pairs_disagreement, bootstrap_statistics
from zooscope.ensemble.blockwise import ensemble_pairs
from zooscope.io import sha256_file
from zooscope.vocab import pair_categories
from zooscope.paircache import Pair, code_digest, digest
from zooscope.ensemble.bootstrap import bootstrap_weights, interval95, model_resample_weights, resampled_counts
from zooscope.artifacts import Predictions

__all__ = ["PairTable", "ensemble_keys", "ensemble_rows", "ensemble_table", "calibration_columns", "group_table"]


@dataclass(frozen=True)
class PairTable:
    """The ensemble half of the study's pair table.

    Attributes:
        frame: one row per pair (model_a, model_b, category, accuracies, agreement, ensembles, intervals).
        draws: bootstrap draws float64 [n_pairs, n_boot] of ``kappa``, ``error_inconsistency`` and
            ``gain``; every pair uses the same resamples, so means over pairs bootstrap by row.
        zoo: float64 [n_boot, n_pairs], how often each pair appears when resample b also redraws the models
            (:func:`zooscope.ensemble.bootstrap.model_resample_weights`): the second level of the intervals.
        per_class: one row per (pair, class): support, both members' and the ensemble's accuracy, which
            member wins, and the ensemble minus the overall better member (negative: the partner hurts).
    """

    frame: pl.DataFrame
    draws: dict[str, np.ndarray]
    zoo: np.ndarray
    per_class: pl.DataFrame


def ensemble_keys(preds: Predictions, pairs: list[Pair], *, n_boot: int, seed: int) -> dict[Pair, str]:
    """Cache key of each pair: both probability files, the labels, the resampling and this code."""
    files = {mid: sha256_file(path) for mid, path in zip(preds.models, preds.probs, strict=True)}
    labels = hashlib.sha256(preds.labels.tobytes()).hexdigest()
    code = code_digest(agreement, blockwise, bootstrap, _exact_argmax, sys.modules[__name__])
    return {(a, b): digest("ensemble", code, n_boot, seed, labels, files[a], files[b]) for a, b in pairs}


def ensemble_rows(preds: Predictions, pairs: list[Pair], *, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """The cached part of the pairs' rows, as columns: ``zooscope.ensemble.blockwise.ensemble_pairs`` counts."""
    index = {mid: m for m, mid in enumerate(preds.models)}
    return ensemble_pairs(list(preds.probs), preds.labels, np.array([(index[a], index[b]) for a, b in pairs]),
                          n_boot=n_boot, seed=seed)


def _per_class(preds: Predictions, pairs: list[Pair], ia: np.ndarray, ib: np.ndarray,
               class_ens_right: np.ndarray) -> pl.DataFrame:
    """Per (pair, class): who wins, and whether the ensemble is worse than the overall better member."""
    n_pairs, num_classes = class_ens_right.shape
    support = np.bincount(preds.labels, minlength=num_classes)
    acc = preds.class_accuracy(num_classes=num_classes)  # [n_models, C]
    with np.errstate(invalid="ignore", divide="ignore"):
        ens = class_ens_right / support  # [n_pairs, C]
    overall = preds.correct.mean(1)
    better = np.where(overall[ia] >= overall[ib], ia, ib)
    row_pair = np.repeat(np.arange(n_pairs), num_classes)
    frame = pl.DataFrame({
        "model_a": pl.Series([a for a, _ in pairs]).gather(row_pair),
        "model_b": pl.Series([b for _, b in pairs]).gather(row_pair),
        "class": np.tile(np.arange(num_classes), n_pairs), "support": np.tile(support, n_pairs),
        "acc_a": acc[ia].ravel(), "acc_b": acc[ib].ravel(), "acc_ens": ens.ravel(),
        "ens_vs_better": (ens - acc[better]).ravel(),
    })
    winner = (pl.when(pl.col("acc_a") > pl.col("acc_b")).then("model_a")
              .when(pl.col("acc_a") < pl.col("acc_b")).then("model_b").otherwise(pl.lit("tie")))
    return frame.with_columns(winner=winner).select(*frame.columns[:7], "winner", "ens_vs_better")


def _designed_zoo(models: Sequence[str], pairs: list[Pair], roots: Mapping[str, str], *, n_boot: int,
                  seed: int) -> np.ndarray:
    """:func:`model_resample_weights` over the models trained apart (those not compressed: the population the
    categories speak for), float64 [n_boot, n_pairs]; a pair with a compressed model weighs 0 in every resample."""
    index = {mid: i for i, mid in enumerate(m for m in models if m not in roots)}
    ia, ib = (np.array([index.get(p[k], -1) for p in pairs], np.int64) for k in (0, 1))
    both = (ia >= 0) & (ib >= 0)
    zoo = np.zeros((n_boot, len(pairs)))
    if len(index) >= 2:
        zoo[:, both] = model_resample_weights(ia[both], ib[both], len(index), n_boot=n_boot, seed=seed)
    return zoo


def ensemble_table(preds: Predictions, cards: Mapping[str, Mapping[str, Any]], pairs: list[Pair], rows: pl.DataFrame,
                   *, roots: Mapping[str, str], n_boot: int, seed: int, matched_band: float) -> PairTable:
    """Assemble the pair table from the predictions, the cards (categories) and the pairs' cached rows.

    Args:
        preds: aligned predictions of the zoo; cards: model id -> card (for ``tags``); roots: compressed model ->
            its family's root (:func:`zooscope.config.compression_roots`), for the categories.
        pairs: the table's pairs; rows: their :func:`ensemble_rows` results, one row per pair, in order.
        n_boot, seed: the resamples the rows were computed with; matched_band: |acc_a - acc_b| bound of
            an accuracy-matched pair.
    """
    index = {mid: m for m, mid in enumerate(preds.models)}
    ia, ib = (np.array([index[p[k]] for p in pairs], np.int64) for k in (0, 1))
    r = {key: rows[key].to_numpy() for key in rows.columns}
    correct, n = preds.correct, len(preds.labels)
    agree = {key: value[ia, ib] for key, value in all_pairs_agreement(correct).items()}
    acc = correct.mean(1)
    one_right = np.rint(agree["error_inconsistency"] * n)
    boot_model = resampled_counts(bootstrap_weights(n, n_boot=n_boot, seed=seed), correct.T)  # [n_boot, n_models]
    draws = bootstrap_statistics(boot_model[:, ia].T, boot_model[:, ib].T, r["boot_both_right"], r["boot_ens_right"], n)
    lo_hi = {key: interval95(value) for key, value in draws.items()}
    columns: dict[str, Any] = {
        "model_a": [a for a, _ in pairs], "model_b": [b for _, b in pairs],
        "category": pair_categories(pairs, {mid: card["tags"] for mid, card in cards.items()}, roots=roots),
        "acc_a": acc[ia], "acc_b": acc[ib], "kappa": agree["kappa"], "kappa_lo": lo_hi["kappa"][0],
        "kappa_hi": lo_hi["kappa"][1], "kappa_max": agree["kappa_max"], "error_inconsistency": agree["error_inconsistency"],
        "error_corr": agree["error_corr"], "disagreement": all_pairs_disagreement(preds.pred)[ia, ib],
    }
    for suffix in ("", "_logits"):
        ens_acc = r[f"ens{suffix}_right"] / n
        with np.errstate(invalid="ignore", divide="ignore"):
            conversion = np.where(one_right > 0, r[f"ens{suffix}_converted"] / one_right, np.nan)
        columns |= {f"ens_acc{suffix}": ens_acc, f"gain{suffix}": ens_acc - np.maximum(acc[ia], acc[ib])}
        if not suffix:
            columns |= {"gain_lo": lo_hi["gain"][0], "gain_hi": lo_hi["gain"][1]}
        columns[f"conversion{suffix}"] = conversion
    columns |= {
        "kappa_ratio": agree["kappa_ratio"], "kappa_min": agree["kappa_min"],
        "kappa_position": agree["kappa_position"], "error_inconsistency_lo": lo_hi["error_inconsistency"][0],
        "error_inconsistency_hi": lo_hi["error_inconsistency"][1], "theta_mean": r["theta_mean"],
        "theta_std": r["theta_std"], "matched": np.abs(acc[ia] - acc[ib]) <= matched_band + 1e-12,
        "weak_pair": [bool(cards[a].get("weak")) or bool(cards[b].get("weak")) for a, b in pairs],
    }
    zoo = _designed_zoo(preds.models, pairs, roots, n_boot=n_boot, seed=seed)
    return PairTable(pl.DataFrame(columns), draws, zoo, _per_class(preds, pairs, ia, ib, r["class_ens_right"]))


def calibration_columns(calibration: Predictions, pairs: list[Pair]) -> pl.DataFrame:
    """Per pair, on the calibration split: both members' accuracy and the ensemble's gain over the better one
    (``cal_acc_a``, ``cal_acc_b``, ``cal_gain``). What is chosen among pairs (best partners, the most complementary
    pair) is chosen on these and reported on eval, so the choice does not flatter the reported number."""
    index = {mid: m for m, mid in enumerate(calibration.models)}
    ia, ib = (np.array([index[p[k]] for p in pairs], np.int64) for k in (0, 1))
    got = ensemble_pairs(list(calibration.probs), calibration.labels, np.stack([ia, ib], 1), n_boot=1)
    acc = calibration.correct.mean(1)
    return pl.DataFrame({"model_a": [a for a, _ in pairs], "model_b": [b for _, b in pairs], "cal_acc_a": acc[ia],
                         "cal_acc_b": acc[ib], "cal_gain": got["ens_right"] / len(calibration.labels)
                         - np.maximum(acc[ia], acc[ib])})


def group_table(per_class: pl.DataFrame, groups: Mapping[str, Sequence[int]]) -> pl.DataFrame:
    """Specialisation per group of classes: one row per (pair, group) with the group's support, both members' and
    the ensemble's accuracy on it (support-weighted over its classes), which member wins it (or ``tie``), and, as
    per class, the ensemble minus the member that is better overall (``ens_vs_better``; negative: the partner hurts
    the group).

    Args:
        per_class: the per-class table of :func:`ensemble_table` (model_a, model_b, class, support, acc_a, acc_b,
            acc_ens, ens_vs_better); groups: group name -> class indices (``ensemble.class_groups``).

    Raises:
        ValueError: a group names a class the dataset does not have.
    """
    schema = {"model_a": pl.String, "model_b": pl.String, "group": pl.String, "support": pl.Int64,
              "acc_a": pl.Float64, "acc_b": pl.Float64, "acc_ens": pl.Float64, "winner": pl.String,
              "ens_vs_better": pl.Float64}
    if not groups:
        return pl.DataFrame(schema=schema)
    num_classes = int(per_class["class"].max()) + 1
    for name, classes in groups.items():
        if max(classes) >= num_classes:
            raise ValueError(f"ensemble.class_groups.{name}: class {max(classes)} does not exist; the dataset has "
                             f"classes 0..{num_classes - 1}")
    of = {c: name for name, classes in groups.items() for c in classes}
    weighted = per_class.filter(pl.col("class").is_in(list(of))).with_columns(
        group=pl.col("class").replace_strict(of, return_dtype=pl.String),
        acc_better=pl.col("acc_ens") - pl.col("ens_vs_better")).with_columns(
        **{f"right_{k}": pl.col(f"acc_{k}").fill_nan(0) * pl.col("support") for k in ("a", "b", "ens", "better")})
    out = weighted.group_by("model_a", "model_b", "group", maintain_order=True).agg(
        pl.col("support").sum(), *(pl.col(f"right_{k}").sum() for k in ("a", "b", "ens", "better")))
    acc = {f"acc_{k}": pl.col(f"right_{k}") / pl.col("support") for k in ("a", "b", "ens")}
    acc["ens_vs_better"] = (pl.col("right_ens") - pl.col("right_better")) / pl.col("support")
    winner = (pl.when(pl.col("acc_a") > pl.col("acc_b")).then("model_a")
              .when(pl.col("acc_a") < pl.col("acc_b")).then("model_b").otherwise(pl.lit("tie")))
    return out.with_columns(**acc).with_columns(winner=winner).select(list(schema)).cast(schema)
