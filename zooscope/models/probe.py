"""Linear probes and k-NN accuracy of an embedding (docs/science.md section 1; Kornblith et al. 2019 protocol).

The probe is multinomial logistic regression on standardised features, fitted with L-BFGS; its L2
strength is the grid value with the best accuracy on a held-out selection split (the calibration split
in the pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from zooscope.config import ProbeSettings

__all__ = ["LinearProbe", "fit_logistic", "fit_probe", "knn_accuracy", "save_probe", "load_probe", "ProbeResult",
           "probe_embeddings"]


@dataclass(frozen=True)
class LinearProbe:
    """A fitted probe: standardisation, weights W [d, C] and bias b [C], and the chosen L2 strength."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    l2: float
    selection: dict[float, float]

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Probe logits float32 [n, C] for features ``x`` [n, d]."""
        z = (np.asarray(x, np.float64) - self.mean) / self.scale
        return (z @ self.weight + self.bias).astype(np.float32)


def _loss_grad(params: np.ndarray, z: np.ndarray, labels: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """Mean cross-entropy + l2/2 ||W||^2 and its gradient; matrix products in float32 (z is float32)."""
    n, d = z.shape
    c = len(params) // (d + 1)
    w, b = params[: d * c].reshape(d, c), params[d * c:]
    s = (z @ w.astype(np.float32)).astype(np.float64) + b
    s -= s.max(1, keepdims=True)
    e = np.exp(s)
    total = e.sum(1)
    rows = np.arange(n)
    loss = float(np.log(total).sum() - s[rows, labels].sum()) / n + 0.5 * l2 * float((w * w).sum())
    resid = e / total[:, None]
    resid[rows, labels] -= 1.0
    resid /= n
    grad_w = (z.T @ resid.astype(np.float32)).astype(np.float64) + l2 * w
    return loss, np.concatenate([grad_w.ravel(), resid.sum(0)])


def fit_logistic(z: np.ndarray, labels: np.ndarray, *, num_classes: int, l2: float, max_iter: int,
                 tol: float = 1e-5, init: np.ndarray | None = None) -> np.ndarray:
    """Minimise mean cross-entropy + l2/2 ||W||^2 (bias unpenalised) over [W.ravel(), b] with L-BFGS.

    Args:
        z: float32 [n, d] standardised features; labels: int [n].
        max_iter: L-BFGS iterations at most; tol: stop earlier once an iteration lowers the objective by
            less than this fraction of it (scipy's ``ftol``).

    Returns:
        float64 [d * C + C]: W [d, C] raveled, then b [C].
    """
    d = z.shape[1]
    x0 = np.zeros(d * num_classes + num_classes) if init is None else init
    res = minimize(_loss_grad, x0, args=(np.asarray(z, np.float32), np.asarray(labels, np.int64), l2), jac=True,
                   method="L-BFGS-B", options={"maxiter": max_iter, "ftol": tol})
    return res.x


def fit_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    select_x: np.ndarray,
    select_y: np.ndarray,
    *,
    num_classes: int,
    l2_grid: tuple[float, ...],
    max_iter: int = 100,
    tol: float = 1e-5,
) -> LinearProbe:
    """Fit a probe on ``train_x`` [n, d] for each L2 strength, keep the best on ``select_x`` [m, d].

    The grid runs from the strongest to the weakest penalty, each fit warm-started from the previous;
    ``max_iter`` and ``tol`` bound each fit (:func:`fit_logistic`).
    """
    train_x = np.asarray(train_x, np.float64)
    if train_x.ndim != 2 or len(train_x) != len(train_y):
        raise ValueError(f"train_x must be [n, d] matching train_y [n]; got {train_x.shape} and {np.shape(train_y)}")
    mean = train_x.mean(0)
    scale = train_x.std(0)
    scale[scale < 1e-8] = 1.0
    z = ((train_x - mean) / scale).astype(np.float32)
    zs = (np.asarray(select_x, np.float64) - mean) / scale
    d = z.shape[1]
    best: tuple[float, float, np.ndarray] | None = None
    selection: dict[float, float] = {}
    params = None
    for l2 in sorted(l2_grid, reverse=True):
        params = fit_logistic(z, train_y, num_classes=num_classes, l2=l2, max_iter=max_iter, tol=tol, init=params)
        w, b = params[: d * num_classes].reshape(d, num_classes), params[d * num_classes:]
        acc = float(((zs @ w + b).argmax(1) == select_y).mean())
        selection[float(l2)] = acc
        if best is None or acc > best[0]:
            best = (acc, l2, params)
    _, l2, params = best
    w, b = params[: d * num_classes].reshape(d, num_classes), params[d * num_classes:]
    return LinearProbe(mean, scale, w, b, float(l2), selection)


def knn_accuracy(train_x: np.ndarray, train_y: np.ndarray, eval_x: np.ndarray, eval_y: np.ndarray, *,
                 k: int, num_classes: int) -> float:
    """Cosine k-NN (FAISS) majority-vote accuracy of ``eval_x`` [m, d] against ``train_x`` [n, d]."""
    from zooscope.models.knn import knn_classify

    pred = knn_classify(train_x, np.asarray(train_y), eval_x, k=k, num_classes=num_classes)
    return float((pred == np.asarray(eval_y)).mean())


_PROBE_ARRAYS = ("mean", "scale", "weight", "bias")


def save_probe(path, probe: LinearProbe) -> None:
    """Write a probe's arrays (mean [d], scale [d], weight [d, C], bias [C], float64) as safetensors, atomically."""
    from zooscope.io import write_safetensors

    write_safetensors(path, {k: np.asarray(getattr(probe, k), np.float64) for k in _PROBE_ARRAYS},
                      metadata={"l2": repr(probe.l2)})


def load_probe(path) -> LinearProbe:
    """Read a probe written by :func:`save_probe` (safetensors: no code runs); ``selection`` is not stored."""
    import json
    from pathlib import Path

    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: probe weights not found; re-run the probe stage")
    with safe_open(str(path), framework="numpy") as fh:
        arrays = {k: fh.get_tensor(k) for k in _PROBE_ARRAYS}
        meta = json.loads((fh.metadata() or {}).get("zooscope", "{}"))
    return LinearProbe(**arrays, l2=float(meta.get("l2", "nan")), selection={})


@dataclass(frozen=True)
class ProbeResult:
    """A fitted probe, its logits for the calibration and eval splits (float32 [n_split, C]: the predictions of
    headless models), and ``summary``, the probe stage's ``probe.json``."""

    probe: LinearProbe
    logits: dict[str, np.ndarray]
    summary: dict[str, Any]


def probe_embeddings(x: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray], *, num_classes: int,
                     settings: ProbeSettings) -> ProbeResult:
    """Probe one model's embeddings.

    Args:
        x: split -> float [n_split, d] for train, calibration and eval; y: split -> int [n_split] labels.
        settings: the study's probe settings (L2 grid, iterations, tolerance, k of the k-NN).
    """
    probe = fit_probe(x["train"], y["train"], x["calibration"], y["calibration"], num_classes=num_classes,
                      l2_grid=settings.l2_grid, max_iter=settings.max_iter, tol=settings.tol)
    logits = {s: probe.logits(x[s]) for s in ("calibration", "eval")}
    probe_acc = float((logits["eval"].argmax(1) == y["eval"]).mean())
    knn_acc = knn_accuracy(x["train"], y["train"], x["eval"], y["eval"], k=settings.knn_k, num_classes=num_classes)
    summary = {"probe_acc": probe_acc, "knn_acc": knn_acc, "knn_k": settings.knn_k, "l2": probe.l2,
               "l2_selection": {f"{k:g}": v for k, v in probe.selection.items()}, "embed_dim": int(x["train"].shape[1])}
    return ProbeResult(probe, logits, summary)
