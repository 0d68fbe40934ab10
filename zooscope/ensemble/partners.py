"""Partner choice without labels (docs/science.md section 3, "Partners without labels"): predict a pair's ensemble
gain from quantities that need no labels, and measure by leaving one model out how well that prediction ranks a
model's partners.

The features of a pair (:data:`FEATURES`) are read from the two models' eval outputs and embeddings only: how often
their top-1 predictions differ, how much their top-5 sets overlap, debiased CKA and mutual k-NN of their embeddings,
and the gap between and the lower of their mean confidences (mean max-probability). No eval label enters them. The
models are taken as given: a headless model predicts through its probe (fitted on the train split's labels) and
every probability is temperature-scaled (the temperature fitted on the calibration split's labels), so
``confidence_*`` depend on those, not on eval labels.

A ridge regression of the measured gain on the standardised features (:func:`fit_ridge`) is fitted, for each model m,
on the pairs without m and predicts m's pairs (:func:`held_out_predictions`); :func:`ranking_quality` then compares
each model's predicted ranking of its partners with their measured gains: Spearman's rho, and whether the top
``k`` predicted partners hold the best measured one. The numbers speak for these very models on these images: N
models give N held-out rankings, and they are not independent (every fit shares most of its pairs).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FEATURES", "DIRECTION", "RIDGE_ALPHA", "TOP_K", "topk_overlap", "confidence_features", "RidgeFit",
           "fit_ridge", "held_out_predictions", "ranking_quality", "spearman", "PartnerChoice", "partner_choice",
           "ordered_partners"]

#: The label-free features of a pair, in the order of the feature matrix's columns.
FEATURES = ("disagreement", "top5_overlap", "cka_debiased", "mutual_knn", "confidence_gap", "confidence_min")
#: Per feature, the direction that should mean more gain before anything is fitted (+1: larger, -1: smaller): the
#: ranking of the single-feature baselines. Models that disagree more, share fewer top-5 classes and fewer
#: representation directions should err on other images; a large confidence gap is the label-free trace of an
#: accuracy gap (a much weaker partner drags the average); a low lower confidence marks a weak member.
DIRECTION = {"disagreement": 1, "top5_overlap": -1, "cka_debiased": -1, "mutual_knn": -1, "confidence_gap": -1,
             "confidence_min": 1}
#: The ridge penalty on standardised features, per training pair (see :func:`fit_ridge`). Fixed, not tuned: with
#: N held-out rankings, choosing it by an inner leave-one-model-out would itself be chosen on the numbers it reports.
RIDGE_ALPHA = 1.0
#: A held-out ranking is a hit when its top ``TOP_K`` predicted partners hold the best measured partner.
TOP_K = 3


def _check_pairs(pairs: np.ndarray, n_models: int) -> np.ndarray:
    """``pairs`` as int64 [P, 2] of two different model indices below ``n_models``."""
    arr = np.asarray(pairs)
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"pairs must be int [n_pairs, 2] model indices, got shape {arr.shape} and dtype {arr.dtype}")
    if len(arr) and (arr.min() < 0 or arr.max() >= n_models or (arr[:, 0] == arr[:, 1]).any()):
        raise ValueError(f"pairs must hold two different model indices in [0, {n_models})")
    return arr.astype(np.int64, copy=False)


def topk_overlap(top: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Per pair, the mean over samples of |T_a(i) ∩ T_b(i)| / k, the share of the two top-k sets they have in common.

    Args:
        top: int [n_models, n_samples, k], each model's k highest-scoring classes per sample (distinct in a row).
        pairs: int [P, 2] model indices.

    Returns:
        float64 [P] in [0, 1]: 1 when both models rank the same k classes on top everywhere (order ignored).
    """
    top = np.asarray(top)
    if top.ndim != 3 or 0 in top.shape:
        raise ValueError(f"top must be a non-empty int [n_models, n_samples, k] array, got shape {top.shape}")
    pairs = _check_pairs(pairs, len(top))
    k = top.shape[2]
    out = np.empty(len(pairs))
    for p, (a, b) in enumerate(pairs):  # rows hold distinct classes: each common class matches exactly once
        out[p] = np.count_nonzero(top[a][:, :, None] == top[b][:, None, :]) / (top.shape[1] * k)
    return out


def confidence_features(confidence: np.ndarray, pairs: np.ndarray) -> dict[str, np.ndarray]:
    """``confidence_gap`` |c_a - c_b| and ``confidence_min`` min(c_a, c_b) of each pair, float64 [P] each, from
    ``confidence`` float [n_models]: each model's mean max-probability on the same samples."""
    c = np.asarray(confidence, np.float64)
    if c.ndim != 1:
        raise ValueError(f"confidence must be float [n_models], got shape {c.shape}")
    pairs = _check_pairs(pairs, len(c))
    a, b = c[pairs[:, 0]], c[pairs[:, 1]]
    return {"confidence_gap": np.abs(a - b), "confidence_min": np.minimum(a, b)}


@dataclass(frozen=True)
class RidgeFit:
    """A ridge regression on standardised features.

    Attributes:
        mean, scale: float64 [F], the training rows' mean and standard deviation of each feature (a missing value
            is replaced by ``mean``; ``scale`` is 1 where a feature is constant, so its standardised column is 0).
        coef: float64 [F], per standard deviation of each feature; intercept: the training rows' mean target.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """float64 [n] predictions for float [n, F] features (nan: missing, counted at the training mean)."""
        x = np.asarray(features, np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.coef):
            raise ValueError(f"features must be [n, {len(self.coef)}], got shape {x.shape}")
        z = (np.where(np.isnan(x), self.mean, x) - self.mean) / self.scale
        return self.intercept + z @ self.coef


def fit_ridge(features: np.ndarray, target: np.ndarray, *, alpha: float = RIDGE_ALPHA) -> RidgeFit:
    """The closed-form ridge regression of ``target`` on standardised ``features``.

    With z the features standardised by the training rows (missing values set to the feature's mean, i.e. to 0),
    minimises (1/n) ||y - ybar - Z b||^2 + alpha ||b||^2: b = (Z^T Z + n alpha I)^-1 Z^T (y - ybar), the intercept
    ybar unpenalised. ``Z^T Z / n`` is the features' correlation matrix, so ``alpha`` is on that scale.

    Args:
        features: float [n, F] (nan: missing); target: float [n], finite; alpha: >= 0 (> 0 when n <= F or the
            features are collinear, for a unique fit).
    """
    x, y = np.asarray(features, np.float64), np.asarray(target, np.float64)
    if x.ndim != 2 or y.shape != (len(x),) or len(x) == 0:
        raise ValueError(f"features [n, F] and target [n] do not fit (n > 0): {x.shape} and {y.shape}")
    if not np.isfinite(y).all() or not alpha >= 0:
        raise ValueError("the target must be finite and alpha >= 0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a feature missing in every row: its mean is nan
        mean = np.nan_to_num(np.nanmean(x, 0))
    filled = np.where(np.isnan(x), mean, x)
    std = filled.std(0)
    scale = np.where(std > 0, std, 1.0)
    z = (filled - mean) / scale
    coef = np.linalg.solve(z.T @ z + len(y) * alpha * np.eye(x.shape[1]), z.T @ (y - y.mean()))
    return RidgeFit(mean, scale, coef, float(y.mean()))


def held_out_predictions(features: np.ndarray, gain: np.ndarray, pairs: np.ndarray, *, n_models: int,
                         alpha: float = RIDGE_ALPHA) -> np.ndarray:
    """Leave one model out: for each model m, a ridge fit on the pairs without m predicts m's pairs.

    Args:
        features: float [P, F] (nan: missing); gain: float [P], the measured gains; pairs: int [P, 2] model indices.

    Returns:
        float64 [P, 2]: [p, s] is pair p's predicted gain from the fit without model ``pairs[p, s]``, the ranking of
        that model's partners (nan where fewer than one pair lacks the model: a zoo of two).
    """
    pairs = _check_pairs(pairs, n_models)
    x, y = np.asarray(features, np.float64), np.asarray(gain, np.float64)
    if x.ndim != 2 or len(x) != len(pairs) or y.shape != (len(pairs),):
        raise ValueError(f"features [P, F], gain [P] and pairs [P, 2] do not fit: {x.shape}, {y.shape}, {pairs.shape}")
    out = np.full((len(pairs), 2), np.nan)
    for m in range(n_models):
        side = pairs == m
        mine = side.any(1)
        if mine.any() and not mine.all():
            out[side] = fit_ridge(x[~mine], y[~mine], alpha=alpha).predict(x[mine])
    return out


def _mean_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of float [n] ``values``, tied values at their mean rank."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # where each run of equal values starts
    ends = np.r_[first[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((first + ends + 1) / 2, ends - first)
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho of two float [n] arrays: the Pearson correlation of their ranks, ties at their mean rank; nan
    when either is constant or not finite, or n < 2. (In numpy: importing SciPy would add a second to the stage.)"""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return math.nan
    rx, ry = _mean_ranks(x) - (len(x) + 1) / 2, _mean_ranks(y) - (len(y) + 1) / 2
    den = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / den if den > 0 else math.nan


def _hit_chance(partners: int, best: int, k: int) -> float:
    """The probability that a uniformly random order of ``partners`` puts one of ``best`` tied best in its top ``k``."""
    if k >= partners:
        return 1.0
    return 1.0 - math.comb(partners - best, k) / math.comb(partners, k)


def ranking_quality(score: np.ndarray, gain: np.ndarray, pairs: np.ndarray, *, n_models: int,
                    k: int = TOP_K) -> list[dict[str, Any]]:
    """How well each model's ranking of its partners by ``score`` matches their measured gains.

    Args:
        score: float [P, 2], [p, s] ranks pair p among the partners of model ``pairs[p, s]`` (higher: better partner;
            a [P] score serves both members); gain: float [P] measured; pairs: int [P, 2].
        k: the hit's cut.

    Returns:
        Per model (index order): ``{partners, spearman, hit, chance, best, best_rank, order}``: ``spearman`` of the
        scores and gains over its partners; ``best`` the partners with the highest measured gain (ties within 1e-12
        all count), ``best_rank`` the predicted rank (1 = first) of the first of them, ``hit`` whether it is within
        ``k``; ``chance`` the hit's probability for a random order (k / (N - 1) without ties); ``order`` the partners
        (model indices) by descending score (ties: the lower index first).
    """
    pairs = _check_pairs(pairs, n_models)
    s = np.asarray(score, np.float64)
    s = np.stack([s, s], 1) if s.ndim == 1 else s
    g = np.asarray(gain, np.float64)
    if s.shape != (len(pairs), 2) or g.shape != (len(pairs),):
        raise ValueError(f"score [P, 2] (or [P]), gain [P] and pairs [P, 2] do not fit: {s.shape}, {g.shape}")
    out = []
    for m in range(n_models):
        rows, side = np.nonzero(pairs == m)
        partner, mine, measured = pairs[rows, 1 - side], s[rows, side], g[rows]
        by_partner = np.argsort(partner, kind="stable")
        partner, mine, measured = partner[by_partner], mine[by_partner], measured[by_partner]
        order = partner[np.argsort(-mine, kind="stable")]
        best = partner[np.isclose(measured, measured.max(), rtol=0, atol=1e-12)] if len(partner) else partner
        rank = int(np.flatnonzero(np.isin(order, best))[0]) + 1 if len(best) else 0
        out.append({"partners": len(partner), "spearman": spearman(mine, measured), "hit": bool(0 < rank <= k),
                    "chance": _hit_chance(len(partner), len(best), k), "best": best.tolist(), "best_rank": rank,
                    "order": order.tolist()})
    return out


@dataclass(frozen=True)
class PartnerChoice:
    """What the ensemble stage writes about partner choice without labels.

    Attributes:
        columns: new columns of the pair table, float64 [P] each: ``top5_overlap``, ``confidence_gap``,
            ``confidence_min`` and ``predicted_gain_a`` / ``predicted_gain_b`` (the pair's predicted gain from the fit
            without model_a's / model_b's pairs: how model_a / model_b ranks this partner).
        metrics: ``metrics/study.json``'s ``partners``.
    """

    columns: dict[str, np.ndarray]
    metrics: dict[str, Any]


def _json(value: float) -> float | None:
    """A JSON-safe number: nan (undefined) becomes None."""
    return None if math.isnan(value) else float(value)


def _summary(quality: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean Spearman over the models where it is defined, their count, the hit rate and its chance."""
    rho = np.array([q["spearman"] for q in quality])
    ok = np.isfinite(rho)
    return {"spearman_mean": _json(rho[ok].mean()) if ok.any() else None, "spearman_models": int(ok.sum()),
            "hit_rate": float(np.mean([q["hit"] for q in quality])),
            "chance": float(np.mean([q["chance"] for q in quality]))}


def partner_choice(models: list[str], pairs: np.ndarray, table: dict[str, np.ndarray], *, top: np.ndarray,
                   confidence: np.ndarray) -> PartnerChoice:
    """Label-free features of every pair, the leave-one-model-out evaluation and the fit on all pairs.

    Args:
        models: the zoo's ids (index order); pairs: int [P, 2] indices into ``models``.
        table: the pair table's ``disagreement``, ``cka_debiased``, ``mutual_knn`` and ``gain`` (eval), float [P] each
            (nan: missing).
        top: int [n_models, n_samples, 5] eval top-5 classes; confidence: float [n_models] eval mean max-probability.
    """
    n = len(models)
    pairs = _check_pairs(pairs, n)
    columns = {"top5_overlap": topk_overlap(top, pairs), **confidence_features(confidence, pairs)}
    x = np.column_stack([np.asarray(table[f] if f in table else columns[f], np.float64) for f in FEATURES])
    gain = np.asarray(table["gain"], np.float64)
    held = held_out_predictions(x, gain, pairs, n_models=n)
    columns |= {"predicted_gain_a": held[:, 0], "predicted_gain_b": held[:, 1]}
    quality = ranking_quality(held, gain, pairs, n_models=n)
    fit = fit_ridge(x, gain)
    features = dict(enumerate(FEATURES))
    per_model = {models[m]: {"spearman": _json(q["spearman"]), "hit": q["hit"], "chance": q["chance"],
                             "best_rank": q["best_rank"], "best": [models[b] for b in q["best"]],
                             "predicted_order": [models[b] for b in q["order"]]} for m, q in enumerate(quality)}
    baselines = {f: _summary(ranking_quality(DIRECTION[f] * np.nan_to_num(x[:, j], nan=np.nanmean(x[:, j])), gain, pairs,
                                             n_models=n)) for j, f in features.items() if np.isfinite(x[:, j]).any()}
    metrics = {
        "features": list(FEATURES), "directions": DIRECTION, "ridge_alpha": RIDGE_ALPHA, "top_k": TOP_K,
        "missing": {f: int(np.isnan(x[:, j]).sum()) for j, f in features.items()},
        "fit_all_pairs": {"intercept": fit.intercept, **{key: {f: float(v[j]) for j, f in features.items()}
                                                         for key, v in (("coef", fit.coef), ("mean", fit.mean),
                                                                        ("scale", fit.scale))}},
        "summary": {"models": n, **_summary(quality), "spearman_pooled": _json(spearman(held.T.ravel(), np.tile(gain, 2)))},
        "baselines": baselines, "models": per_model,
    }
    return PartnerChoice(columns, metrics)


def ordered_partners(pairs: Any, model: str | None = None) -> Any:
    """The pair table (a polars frame with ``model_a``, ``model_b``, ``category``, ``gain``, ``predicted_gain_a``,
    ``predicted_gain_b`` and the :data:`FEATURES`) as one row per (model, partner): ``model, partner, category,
    predicted_gain`` (from the fit without the model's pairs), ``gain`` (measured, eval) and the pair's features;
    only ``model``'s rows when given (its ranking is ``metrics/study.json``'s ``predicted_order``). Pairs left out of
    the fit (a compressed model's: null predictions) are left out."""
    import polars as pl

    sides = [pairs.select(pl.col(f"model_{me}").alias("model"), pl.col(f"model_{other}").alias("partner"), "category",
                          pl.col(f"predicted_gain_{me}").alias("predicted_gain"), "gain", *FEATURES)
             for me, other in (("a", "b"), ("b", "a"))]
    both = pl.concat(sides).drop_nulls("predicted_gain")
    return both if model is None else both.filter(pl.col("model") == model)
