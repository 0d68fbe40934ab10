"""Do two models make the same mistakes, and does averaging them help? (docs/science.md sections 2 and 3)

Every agreement statistic of a pair is a function of four counts over the ``n`` evaluation samples:
``n_a`` and ``n_b`` (samples each model gets right) and ``n_ab`` (samples both get right). The one
core, :func:`agreement_from_counts`, turns broadcastable count arrays into the statistics, so
the single pair, the bootstrap resamples and the all-pairs matrices share the same arithmetic and
give identical numbers. Kappa and the correlation are written in integer counts (the docs/science.md
formulas multiplied through by ``n**2``), so degenerate pairs (a perfect model, a constant error
indicator) are detected exactly rather than through rounding.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from zooscope._checks import as_correct, as_labels, check_same_shape, check_scores
from zooscope.ensemble.bootstrap import bootstrap_weights, interval95, resampled_counts

__all__ = [
    "error_consistency",
    "disagreement",
    "pair_ensemble",
    "agreement_from_counts",
    "bootstrap_statistics",
    "bootstrap_pair",
    "all_pairs_agreement",
    "all_pairs_disagreement",
    "class_specialisation",
    "image_split",
]


# ---------------------------------------------------------------------------------------------
# the core: statistics from counts


def agreement_from_counts(n_a: ArrayLike, n_b: ArrayLike, n_ab: ArrayLike, n: int) -> dict[str, np.ndarray]:
    """Section 2 statistics from broadcastable counts of correct samples out of ``n``.

    With p_a = n_a/n, p_b = n_b/n and c_obs = (n - n_a - n_b + 2 n_ab)/n, the docs/science.md formulas become
        kappa     = (c_obs - c_exp) / (1 - c_exp)           = 2 (n n_ab - n_a n_b) / (n (n_a + n_b) - 2 n_a n_b)
        kappa_max = same with n_ab -> min(n_a, n_b)           (c_obs_max = 1 - |p_a - p_b|)
        kappa_min = same with n_ab -> max(0, n_a + n_b - n)   (c_obs_min = |p_a + p_b - 1|)
        kappa_position = (kappa - kappa_min) / (kappa_max - kappa_min): where kappa sits in the range the two
            accuracies allow (0: errors as disjoint as possible, 1: as nested as possible)
        error_corr = (n n_ab - n_a n_b) / sqrt(n_a (n - n_a) n_b (n - n_b))
    The kappa denominator is zero only when both models are all right or both all wrong
    (c_obs == 1 == c_exp): kappa and kappa_max are then 1. kappa_ratio is nan where kappa_max is 0
    (one model perfect or never right while the other is not); error_corr is nan where an error
    indicator is constant.
    """
    cov = n * n_ab - n_a * n_b
    cov_max = n * np.minimum(n_a, n_b) - n_a * n_b
    cov_min = n * np.maximum(0, n_a + n_b - n) - n_a * n_b
    den = n * (n_a + n_b) - 2 * n_a * n_b
    var = n_a * (n - n_a) * n_b * (n - n_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(den == 0, 1.0, 2 * cov / den)
        kappa_max = np.where(den == 0, 1.0, 2 * cov_max / den)
        kappa_min = np.where(den == 0, 1.0, 2 * cov_min / den)
        return {
            "error_inconsistency": (n_a + n_b - 2 * n_ab) / n,
            "c_obs": (n - n_a - n_b + 2 * n_ab) / n,
            "c_exp": (n_a * n_b + (n - n_a) * (n - n_b)) / n**2,
            "kappa": kappa,
            "kappa_max": kappa_max,
            "kappa_ratio": np.where(kappa_max == 0, np.nan, kappa / kappa_max),
            "kappa_min": kappa_min,
            "kappa_position": np.where(kappa_max == kappa_min, np.nan, (kappa - kappa_min) / (kappa_max - kappa_min)),
            "error_corr": np.where(var == 0, np.nan, cov / np.sqrt(var)),
        }


def _ensemble_stats(correct_a: np.ndarray, correct_b: np.ndarray, correct_ens: np.ndarray) -> tuple[float, float]:
    """(gain over the better member, conversion rate) from bool [n] correctness of members and ensemble."""
    gain = correct_ens.mean() - max(correct_a.mean(), correct_b.mean())
    one_right = correct_a != correct_b
    conversion = correct_ens[one_right].mean() if one_right.any() else np.nan
    return float(gain), float(conversion)


# ---------------------------------------------------------------------------------------------
# one pair


def error_consistency(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float]:
    """Error agreement of two models on the same samples (docs/science.md section 2).

    Args:
        correct_a, correct_b: bool (or 0/1) [n_samples], 1 where the model is right; same sample order.

    Returns:
        ``{error_inconsistency, c_obs, c_exp, kappa, kappa_max, kappa_ratio, kappa_min, kappa_position,
        error_corr}`` as floats. kappa is Cohen's kappa (1 when c_obs == 1 == c_exp), kappa_max and kappa_min
        its bounds given the two accuracies, kappa_ratio = kappa / kappa_max (nan when kappa_max == 0),
        kappa_position = kappa's place in [kappa_min, kappa_max] (nan when that range is empty), error_corr the
        Pearson correlation of the error indicators (nan when one is constant).
    """
    a, b = as_correct("correct_a", correct_a), as_correct("correct_b", correct_b)
    check_same_shape("correct_a", a, "correct_b", b)
    counts = np.count_nonzero(a), np.count_nonzero(b), np.count_nonzero(a & b)
    return {key: float(value) for key, value in agreement_from_counts(*counts, len(a)).items()}


def disagreement(pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    """Fraction of samples where the predicted labels int [n_samples] differ (both wrong differently counts)."""
    a, b = np.asarray(pred_a), np.asarray(pred_b)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError(f"pred_a must be a non-empty 1-D array of labels, got shape {a.shape}")
    check_same_shape("pred_a", a, "pred_b", b)
    return np.count_nonzero(a != b) / len(a)


def pair_ensemble(
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    labels: np.ndarray,
    *,
    logits_a: np.ndarray | None = None,
    logits_b: np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy of the two-model ensemble and what it adds (docs/science.md section 3).

    Args:
        probs_a, probs_b: float [n_samples, num_classes], temperature-scaled softmax probabilities.
        labels: int [n_samples].
        logits_a, logits_b: optional float [n_samples, num_classes], temperature-scaled logits
            (``logits / T``); give both or neither.

    Returns:
        ``{acc_a, acc_b, acc_ensemble, gain, conversion_rate}``, plus ``acc_ensemble_logits``,
        ``gain_logits`` and ``conversion_rate_logits`` when logits are given. The ensemble predicts
        the argmax of the mean; gain = acc_ensemble - max(acc_a, acc_b); conversion rate = among
        samples where exactly one member is right, the fraction the ensemble gets right (nan when none).
        ``bootstrap_pair`` takes ``(probs_a + probs_b).argmax(1) == labels`` as the ensemble's correctness.
    """
    labels = as_labels(labels)
    probs_a, probs_b = check_scores("probs_a", probs_a, labels), check_scores("probs_b", probs_b, labels)
    check_same_shape("probs_a", probs_a, "probs_b", probs_b)
    if (logits_a is None) != (logits_b is None):
        raise ValueError("give both logits_a and logits_b, or neither")

    correct_a, correct_b = probs_a.argmax(1) == labels, probs_b.argmax(1) == labels
    result = {"acc_a": float(correct_a.mean()), "acc_b": float(correct_b.mean())}
    ensembles = {"": (probs_a, probs_b)}
    if logits_a is not None:
        logits_a, logits_b = check_scores("logits_a", logits_a, labels), check_scores("logits_b", logits_b, labels)
        check_same_shape("probs_a", probs_a, "logits_a", logits_a)
        check_same_shape("logits_a", logits_a, "logits_b", logits_b)
        ensembles["_logits"] = (logits_a, logits_b)
    for suffix, (a, b) in ensembles.items():
        correct_ens = (np.asarray(a, np.float64) + b).argmax(1) == labels
        gain, conversion = _ensemble_stats(correct_a, correct_b, correct_ens)
        result |= {f"acc_ensemble{suffix}": float(correct_ens.mean()), f"gain{suffix}": gain,
                   f"conversion_rate{suffix}": conversion}
    return result


def bootstrap_statistics(n_a: ArrayLike, n_b: ArrayLike, n_ab: ArrayLike, n_ens: ArrayLike, n: int) -> dict[str, np.ndarray]:
    """kappa, error inconsistency and ensemble gain of resamples from their counts (broadcastable arrays).

    Args:
        n_a, n_b, n_ab, n_ens: per resample, the drawn samples that a, b, both, and their ensemble get
            right (e.g. [n_boot] for one pair, [n_pairs, n_boot] for many); ``n`` draws per resample.

    Returns:
        ``{"kappa", "error_inconsistency", "gain"}``, arrays of the broadcast shape.
    """
    stats = agreement_from_counts(n_a, n_b, n_ab, n)
    gain = (np.asarray(n_ens) - np.maximum(n_a, n_b)) / n
    return {"kappa": stats["kappa"], "error_inconsistency": stats["error_inconsistency"], "gain": gain}


def bootstrap_pair(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    correct_ens: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    block: int = 64,
) -> dict[str, tuple[float, float]]:
    """95% percentile bootstrap intervals over samples for kappa, error inconsistency and ensemble gain.

    The resamples are :func:`zooscope.ensemble.bootstrap.bootstrap_weights` (n_boot, seed, block): the counts of
    every resample follow from one product with the [n_samples, 4] indicator matrix (a right, b right,
    both right, ensemble right), so there is no Python loop over resamples; memory O(n_boot * n_samples)
    bytes. Every pair resampled with the same seed and block sees the same resamples, which is what lets
    ``zooscope.ensemble.blockwise`` reproduce these intervals for a whole zoo at once.

    Args:
        correct_a, correct_b, correct_ens: bool (or 0/1) [n_samples], correctness of each member and of
            their ensemble on the same samples.
        n_boot: number of resamples (docs/science.md asks for >= 1000).
        seed: seed of ``numpy.random.default_rng``; the same seed and block give the same intervals.
        block: resamples drawn per step.

    Returns:
        ``{"kappa": (lo, hi), "error_inconsistency": (lo, hi), "gain": (lo, hi)}``.
    """
    a, b = as_correct("correct_a", correct_a), as_correct("correct_b", correct_b)
    ens = as_correct("correct_ens", correct_ens)
    check_same_shape("correct_a", a, "correct_b", b)
    check_same_shape("correct_a", a, "correct_ens", ens)

    weights = bootstrap_weights(len(a), n_boot=n_boot, seed=seed, block=block)
    counts = resampled_counts(weights, np.stack([a, b, a & b, ens], axis=1))
    draws = bootstrap_statistics(*counts.T, len(a))
    return {key: tuple(float(q) for q in interval95(v)) for key, v in draws.items()}


# ---------------------------------------------------------------------------------------------
# all pairs of a zoo


def all_pairs_agreement(correct: np.ndarray, *, block: int = 65536) -> dict[str, np.ndarray]:
    """``error_consistency`` for every pair of models at once, by matrix products.

    The joint counts are n_ab = C C^T for C = correct as float [n_models, n_samples] (exact integers),
    accumulated over blocks of ``block`` samples so memory stays O(n_models * block).

    Args:
        correct: bool (or 0/1) [n_models, n_samples].

    Returns:
        The keys of :func:`error_consistency`, each float64 [n_models, n_models]; entry [i, j] equals
        ``error_consistency(correct[i], correct[j])[key]``.
    """
    correct = as_correct("correct", correct, ndim=2)
    if block < 1:
        raise ValueError(f"block must be positive, got {block}")
    n_ab = np.zeros((len(correct), len(correct)))
    for start in range(0, correct.shape[1], block):
        c = correct[:, start:start + block].astype(np.float64)
        n_ab += c @ c.T
    n_a = np.diag(n_ab).copy()
    return agreement_from_counts(n_a[:, None], n_a[None, :], n_ab, correct.shape[1])


def all_pairs_disagreement(preds: np.ndarray, *, block: int = 16384) -> np.ndarray:
    """``disagreement`` for every pair of models: float64 [n_models, n_models] from preds [n_models, n_samples].

    ``preds`` holds non-negative integer class indices. Samples are taken ``block`` at a time and cast to
    the narrowest unsigned type that holds them (uint8 up to 256 classes); within a block each model is
    compared with all later models at once, so memory stays O(n_models * block) whatever n_samples.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] == 0:
        raise ValueError(f"preds must be [n_models, n_samples] with n_samples > 0, got shape {preds.shape}")
    if not np.issubdtype(preds.dtype, np.integer) or preds.min() < 0:
        raise ValueError(f"preds must hold non-negative integer class indices, got dtype {preds.dtype}")
    if block < 1:
        raise ValueError(f"block must be positive, got {block}")
    narrow = np.min_scalar_type(preds.max())
    differ = np.zeros((len(preds), len(preds)), np.int64)
    for start in range(0, preds.shape[1], block):
        p = preds[:, start:start + block].astype(narrow)
        for i in range(len(p)):
            differ[i, i + 1:] += (p[i] != p[i + 1:]).sum(1)
    return (differ + differ.T) / preds.shape[1]


# ---------------------------------------------------------------------------------------------
# specialisation and the zoo as a whole


def class_specialisation(
    probs_a: np.ndarray, probs_b: np.ndarray, labels: np.ndarray, *, num_classes: int
) -> dict[str, np.ndarray | float]:
    """Which member is better on which class, and how their true-class confidences relate.

    Args:
        probs_a, probs_b: float [n_samples, num_classes], temperature-scaled probabilities.
        labels: int [n_samples].
        num_classes: number of classes (must match the probability width).

    Returns:
        ``support`` int [num_classes] (samples per class); ``acc_a``, ``acc_b``, ``acc_ensemble`` float
        [num_classes] (nan for classes without samples); ``theta_mean`` and ``theta_std`` floats, the mean
        and standard deviation of theta_i = atan2(conf_a,i, conf_b,i) over samples, where conf is the
        true-class probability (theta in [0, pi/2]; pi/4 means equal confidence, above favours a).
    """
    labels = as_labels(labels)
    probs_a, probs_b = check_scores("probs_a", probs_a, labels), check_scores("probs_b", probs_b, labels)
    check_same_shape("probs_a", probs_a, "probs_b", probs_b)
    if probs_a.shape[1] != num_classes:
        raise ValueError(f"num_classes={num_classes} but the probabilities have {probs_a.shape[1]} columns")

    support = np.bincount(labels, minlength=num_classes)
    rows = np.arange(len(labels))
    result: dict[str, np.ndarray | float] = {"support": support}
    ensemble = np.asarray(probs_a, np.float64) + probs_b
    for key, scores in (("acc_a", probs_a), ("acc_b", probs_b), ("acc_ensemble", ensemble)):
        right = np.bincount(labels, weights=scores.argmax(1) == labels, minlength=num_classes)
        with np.errstate(invalid="ignore"):
            result[key] = right / support
    theta = np.arctan2(probs_a[rows, labels], probs_b[rows, labels])
    return result | {"theta_mean": float(theta.mean()), "theta_std": float(theta.std())}


def image_split(correct: np.ndarray, labels: np.ndarray, *, num_classes: int) -> dict[str, np.ndarray]:
    """The three-way split of the eval images by the zoo (Meding et al. 2022): ``trivial`` (every model right),
    ``impossible`` (every model wrong) and ``separating`` (the rest, the only images on which models can differ),
    each int64 [num_classes], the count per class.

    Args:
        correct: bool [n_models, n_samples]; labels: int [n_samples].
    """
    correct = as_correct("correct", correct, ndim=2)
    labels = as_labels(labels, n=correct.shape[1], num_classes=num_classes)
    right = correct.sum(0)
    kinds = {"trivial": right == len(correct), "impossible": right == 0}
    kinds["separating"] = ~(kinds["trivial"] | kinds["impossible"])
    return {kind: np.bincount(labels[mask], minlength=num_classes).astype(np.int64) for kind, mask in kinds.items()}
