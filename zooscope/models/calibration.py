"""Per-model quality from logits: temperature scaling, NLL, ECE, top-k accuracy (docs/science.md section 1)."""

from __future__ import annotations

import numpy as np

from zooscope._checks import as_labels
from zooscope.models.bounded import minimize_bounded

__all__ = ["TEMPERATURE_BOUNDS", "fit_temperature", "at_bound", "softmax", "nll", "reliability", "ece", "topk"]


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits must be [n, C] and labels [n]; got {logits.shape} and {np.shape(labels)}")
    return logits, as_labels(labels, n=len(logits), num_classes=logits.shape[1], allow_empty=True)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """log softmax(``x`` [n, C]) row-wise, the operations of ``scipy.special.log_softmax(x, axis=1)`` in their
    order (shift by the finite row maximum), so the same floats without importing SciPy (a third of a second)."""
    x_max = np.max(x, axis=1, keepdims=True)
    x_max[~np.isfinite(x_max)] = 0
    tmp = x - x_max
    with np.errstate(divide="ignore"):
        return tmp - np.log(np.sum(np.exp(tmp), axis=1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, *, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` [n] under softmax(``logits`` [n, C] / T)."""
    logits, labels = _check(logits, labels)
    logp = log_softmax(logits / temperature)
    return float(-logp[np.arange(len(labels)), labels].mean())


#: The range :func:`fit_temperature` searches.
TEMPERATURE_BOUNDS = (0.05, 20.0)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The temperature T > 0 minimising NLL on held-out (calibration) data (Guo et al. 2017).

    One-dimensional bounded minimisation over log T (NLL is smooth and, in practice, unimodal in T). A result
    on a bound (:func:`at_bound`) means the optimum lies outside the range: the logits are degenerate.
    """
    logits, labels = _check(logits, labels)
    log_t = minimize_bounded(lambda log_t: nll(logits, labels, temperature=float(np.exp(log_t))),
                             lo=float(np.log(bounds[0])), hi=float(np.log(bounds[1])), xatol=1e-5)
    return float(np.exp(log_t))


def at_bound(temperature: float, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> bool:
    """Whether a fitted temperature sits on its search bound (within 0.1%), so it is not the NLL optimum."""
    return temperature <= bounds[0] * 1.001 or temperature >= bounds[1] * 0.999


def softmax(logits: np.ndarray, *, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T) row-wise, float64 [n, C]."""
    return np.exp(log_softmax(np.asarray(logits, np.float64) / temperature))


def reliability(probs: np.ndarray, labels: np.ndarray, *, bins: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reliability diagram's bins (Guo et al. 2017): per equal-width confidence bin b, holding the confidences
    in ((b-1)/bins, b/bins] (confidence = max probability), the sample count and the sums of correctness and of
    confidence.

    Args:
        probs: float [n, C]; labels: int [n].

    Returns:
        ``(count, correct_sum, confidence_sum)``, each float64 [bins]; a bin's accuracy is correct_sum / count.
    """
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64)
    conf = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    return (np.bincount(idx, minlength=bins).astype(np.float64), np.bincount(idx, weights=correct, minlength=bins),
            np.bincount(idx, weights=conf, minlength=bins))


def ece(probs: np.ndarray, labels: np.ndarray, *, bins: int = 15) -> float:
    """Expected calibration error with ``bins`` equal-width confidence bins (Guo et al. 2017).

    ECE = sum_b |B_b| / n * |acc(B_b) - conf(B_b)| over the bins of :func:`reliability`.
    """
    _, acc_sum, conf_sum = reliability(probs, labels, bins=bins)
    return float(np.abs(acc_sum - conf_sum).sum() / max(len(labels), 1))


def topk(scores: np.ndarray, *, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores per row, best first: int64 [n, k]. Equal scores go to the lower class
    index first, as ``numpy.argmax`` and every ensemble of the pipeline break ties, so column 0 is the argmax."""
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64)
