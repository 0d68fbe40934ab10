"""Adversarial robustness and transfer (docs/science.md section 7): FGSM and PGD under an L_inf budget, in each
model's input space (pixels in [0, 1] before its normalisation), with gradients through the real network;
headless models are attacked through their linear probe.

A *classifier* here is a function from pixels float32 [b, C, H, W] in [0, 1] to logits [b, num_classes].
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["Classifier", "classifier", "pixel_inputs", "fgsm", "pgd", "attack", "ATTACKS", "predict",
           "robust_accuracy", "Transfer", "transfer_matrix", "transfer_rates", "matrix_correlation"]

Classifier = Callable[[torch.Tensor], torch.Tensor]


def classifier(model: nn.Module, *, mean: list[float], std: list[float],
               probe: Mapping[str, np.ndarray] | None = None, device: str | torch.device = "cpu") -> Classifier:
    """Pixels in [0, 1] -> logits of ``model`` (moved to ``device``, in eval mode, its parameters frozen).

    Args:
        mean, std: the model's per-channel input normalisation (its card's ``preprocess``).
        probe: for a headless model, its linear probe ``{mean [d], scale [d], weight [d, C], bias [C]}``;
            the logits are then ((embedding - mean) / scale) @ weight + bias.
        device: where the network runs; inputs may live anywhere (gradients flow back through the copy),
            the logits are on ``device``.
    """
    from zooscope.zoo.embedding import embedding_fn

    model.eval().requires_grad_(False).to(device)
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    if probe is None:
        return lambda x: model((x.to(device) - m) / s)
    embed = embedding_fn(model)
    p = {k: torch.as_tensor(np.asarray(probe[k]), dtype=torch.float32, device=device)
         for k in ("mean", "scale", "weight", "bias")}
    return lambda x: ((embed((x.to(device) - m) / s)[0] - p["mean"]) / p["scale"]) @ p["weight"] + p["bias"]


def pixel_inputs(dataset, positions: np.ndarray, preprocess: dict[str, Any]) -> torch.Tensor:
    """The model's input for ``positions`` before normalisation: float32 [n, C, H, W] in [0, 1].

    Native preprocessing takes the dataset's pixels; timm preprocessing applies the model's resize and
    crop with a unit normalisation.
    """
    from zooscope.data.transforms import iter_batches, pixels

    if preprocess["kind"] == "native":
        return pixels(dataset.images[positions]).contiguous()

    chans = preprocess["input_size"][0]
    unit = {**preprocess, "mean": [0.0] * chans, "std": [1.0] * chans}
    return torch.cat(list(iter_batches(dataset, positions, unit, batch_size=256)))


def _check(x: torch.Tensor, y: torch.Tensor, eps: float) -> None:
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"x must be [n, C, H, W] and y [n]; got {tuple(x.shape)} and {tuple(y.shape)}")
    if not 0 <= eps <= 1:
        raise ValueError(f"eps is an L_inf budget on [0, 1] pixels and must lie in [0, 1], got {eps}")


def _input_grad(fn: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = fn(x)
        loss = nn.functional.cross_entropy(logits, y.to(logits.device), reduction="sum")
        return torch.autograd.grad(loss, x)[0]


def fgsm(fn: Classifier, x: torch.Tensor, y: torch.Tensor, *, eps: float) -> torch.Tensor:
    """Fast gradient sign method: x + eps sign(grad_x loss), clipped to [0, 1]. x [n, C, H, W], y int64 [n]."""
    _check(x, y, eps)
    if eps == 0:
        return x.clone()
    return (x + eps * _input_grad(fn, x, y).sign()).clamp_(0.0, 1.0).detach()


def pgd(fn: Classifier, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int, step_size: float | None = None,
        seed: int = 0, random_start: bool = True) -> torch.Tensor:
    """Projected gradient descent on the L_inf ball of radius ``eps`` (Madry et al. 2018).

    Args:
        x: float32 [n, C, H, W] in [0, 1]; y: int64 [n].
        steps: signed-gradient steps; step_size: None gives 2.5 eps / steps.
        seed: seeds the uniform random start in the ball.
    """
    _check(x, y, eps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if eps == 0:
        return x.clone()
    alpha = 2.5 * eps / steps if step_size is None else step_size
    adv = x.clone()
    if random_start:
        gen = torch.Generator().manual_seed(seed)
        adv = (adv + (torch.rand(x.shape, generator=gen) * 2 - 1).to(x) * eps).clamp_(0.0, 1.0)
    for _ in range(steps):
        adv = adv + alpha * _input_grad(fn, adv, y).sign()
        adv = torch.minimum(torch.maximum(adv, x - eps), x + eps).clamp_(0.0, 1.0).detach()
    return adv


#: Attack methods by name: (classifier, x, y, eps, steps, seed) -> adversarial x.
ATTACKS: dict[str, Callable[..., torch.Tensor]] = {
    "fgsm": lambda fn, x, y, *, eps, steps, seed: fgsm(fn, x, y, eps=eps),
    "pgd": lambda fn, x, y, *, eps, steps, seed: pgd(fn, x, y, eps=eps, steps=steps, seed=seed),
}


def attack(fn: Classifier, x: torch.Tensor, y: torch.Tensor, *, method: str, eps: float, steps: int = 5, seed: int = 0,
           batch_size: int = 256) -> torch.Tensor:
    """Adversarial examples [n, C, H, W] by ``method`` (a key of :data:`ATTACKS`), ``batch_size`` at a time."""
    try:
        run = ATTACKS[method]
    except KeyError:
        raise ValueError(f"unknown attack {method!r}; known: {', '.join(ATTACKS)}") from None
    return torch.cat([run(fn, x[i:i + batch_size], y[i:i + batch_size], eps=eps, steps=steps, seed=seed + i)
                      for i in range(0, len(x), batch_size)])


def predict(fn: Classifier, x: torch.Tensor, *, batch_size: int = 256) -> np.ndarray:
    """Predicted classes int64 [n] of ``x`` [n, C, H, W]."""
    with torch.inference_mode():
        return torch.cat([fn(x[i:i + batch_size]).argmax(1).cpu() for i in range(0, len(x), batch_size)]).numpy()


def robust_accuracy(fn: Classifier, x: torch.Tensor, y: torch.Tensor, *, method: str, eps: float, steps: int = 5,
                    seed: int = 0, batch_size: int = 256) -> float:
    """Accuracy of ``fn`` on adversarial examples crafted against itself."""
    adv = attack(fn, x, y, method=method, eps=eps, steps=steps, seed=seed, batch_size=batch_size)
    return float((predict(fn, adv, batch_size=batch_size) == y.numpy()).mean())


@dataclass(frozen=True)
class Transfer:
    """Examples crafted on each source model, classified by every target.

    Attributes:
        models: model ids (index i below).
        accuracy: float64 [M, M], accuracy[a, b] = accuracy of model b on the examples crafted on model a
            (nan where their input spaces differ); the diagonal is each model's own robust accuracy.
        clean: int64 [M, n], each model's prediction on the clean inputs.
        adversarial: int64 [M, M, n], adversarial[a, b] = model b's predictions on the examples crafted on a
            (-1 for targets whose input space differs).
        examples: for each source in ``keep``, its adversarial examples float32 [n, C, H, W].
    """

    models: tuple[str, ...]
    accuracy: np.ndarray
    clean: np.ndarray
    adversarial: np.ndarray
    examples: dict[str, torch.Tensor]


def transfer_matrix(classifiers: Mapping[str, Classifier], inputs: Mapping[str, torch.Tensor], y: torch.Tensor, *,
                    method: str, eps: float, steps: int = 5, seed: int = 0, batch_size: int = 256,
                    keep: Collection[str] = ()) -> Transfer:
    """Craft on every model, evaluate on every model: the transfer matrix for every ordered pair.

    Args:
        classifiers: model id -> classifier; inputs: model id -> its clean inputs [n, C, H, W] (the same
            samples for every model; models whose input shapes differ from the source's get nan).
        y: int64 [n] labels.
        keep: the sources whose examples and predictions are returned (for pictures and explanations).
    """
    ids = tuple(classifiers)
    if set(inputs) != set(ids):
        raise ValueError(f"inputs must be given for exactly the models {ids}, got {tuple(inputs)}")
    labels = y.numpy()
    acc = np.full((len(ids), len(ids)), np.nan)
    clean = np.stack([predict(classifiers[m], inputs[m], batch_size=batch_size) for m in ids])
    preds = np.full((len(ids), len(ids), len(labels)), -1, np.int64)
    examples = {}
    for a, src in enumerate(ids):
        adv = attack(classifiers[src], inputs[src], y, method=method, eps=eps, steps=steps, seed=seed,
                     batch_size=batch_size)
        for b, dst in enumerate(ids):
            if inputs[dst].shape != adv.shape:
                continue
            preds[a, b] = predict(classifiers[dst], adv, batch_size=batch_size)
            acc[a, b] = float((preds[a, b] == labels).mean())
        if src in keep:
            examples[src] = adv
    return Transfer(ids, acc, clean, preds, examples)


def transfer_rates(clean: np.ndarray, adversarial: np.ndarray, labels: np.ndarray, *, n_boot: int = 1000,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """The transfer rate of every ordered pair, with a bootstrap interval over the attacked samples.

    Among the samples both the source a and the target b classify correctly when clean and whose adversarial
    version (crafted on a) fools a, the fraction that also fools b. This leaves out b's own clean errors and
    the examples that never fooled a, which ``1 - accuracy`` counts.

    Args:
        clean: int [M, n] clean predictions; adversarial: int [M, M, n], target b's predictions on source a's
            examples (-1: not comparable); labels: int [n].
        n_boot, seed: the bootstrap over samples (:func:`zooscope.ensemble.bootstrap.bootstrap_weights`).

    Returns:
        ``rate``, ``lo``, ``hi`` float64 [M, M] (nan on the diagonal, where the rate is 1 by definition, and where
        no sample qualifies), ``eligible`` int64 [M, M] (the samples the rate is over).
    """
    from zooscope.ensemble.bootstrap import bootstrap_weights, resampled_counts

    clean_right = clean == labels  # [M, n]
    m, n = clean.shape
    weights = bootstrap_weights(n, n_boot=n_boot, seed=seed)
    out = {key: np.full((m, m), np.nan) for key in ("rate", "lo", "hi")}
    out["eligible"] = np.zeros((m, m), np.int64)
    for a in range(m):
        fools_source = clean_right[a] & (adversarial[a, a] != labels)
        valid = adversarial[a] >= 0  # [M, n]
        eligible = fools_source & clean_right & valid  # [M(targets), n]
        fooled = eligible & (adversarial[a] != labels)
        counts = resampled_counts(weights, np.concatenate([eligible, fooled]).T)  # [n_boot, 2M]
        with np.errstate(invalid="ignore", divide="ignore"):
            draws = counts[:, m:] / counts[:, :m]
            rate = fooled.sum(1) / eligible.sum(1)
        lo, hi = np.full(m, np.nan), np.full(m, np.nan)
        rated = np.isfinite(draws).any(0)  # targets with an eligible sample in some resample
        if rated.any():
            lo[rated], hi[rated] = np.nanpercentile(np.where(np.isfinite(draws[:, rated]), draws[:, rated], np.nan),
                                                    [2.5, 97.5], axis=0)
        out["rate"][a], out["lo"][a], out["hi"][a] = rate, lo, hi
        out["eligible"][a] = eligible.sum(1)
    for key in ("rate", "lo", "hi"):
        np.fill_diagonal(out[key], np.nan)
    return out


def _residuals(values: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    """``values`` [k] minus their least-squares fit on [1, covariates [k, c]]."""
    design = np.column_stack([np.ones(len(values)), covariates])
    return values - design @ np.linalg.lstsq(design, values, rcond=None)[0]


def matrix_correlation(a: np.ndarray, b: np.ndarray, *, accuracy: np.ndarray | None = None) -> dict[str, float]:
    """Pearson and Spearman correlation of the off-diagonal entries of two [M, M] matrices (nan entries of
    either are dropped): ``{pearson, spearman, n}``.

    With ``accuracy`` (float [M], each model's), also the partial correlations with both models' accuracies
    held fixed (``pearson_partial``, ``spearman_partial``: both entries' residuals after a linear fit on the
    row and column model's accuracy; on ranks for Spearman), since both kappa and transfer move with accuracy.
    """
    from scipy.stats import pearsonr, rankdata, spearmanr

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"need two square matrices of one shape, got {a.shape} and {b.shape}")
    off = ~np.eye(len(a), dtype=bool) & np.isfinite(a) & np.isfinite(b)
    x, z = a[off], b[off]
    nan = float("nan")
    out = {"pearson": nan, "spearman": nan, "n": int(len(x))}
    if accuracy is not None:
        out |= {"pearson_partial": nan, "spearman_partial": nan}
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(z) == 0:
        return out
    out |= {"pearson": float(pearsonr(x, z)[0]), "spearman": float(spearmanr(x, z)[0])}
    if accuracy is not None and len(x) > 4:
        acc = np.asarray(accuracy, np.float64)
        rows, cols = np.nonzero(off)
        cov = np.column_stack([acc[rows], acc[cols]])
        ranked = np.column_stack([rankdata(cov[:, 0]), rankdata(cov[:, 1])])
        for name, (u, v, c) in (("pearson_partial", (x, z, cov)), ("spearman_partial", (rankdata(x), rankdata(z), ranked))):
            ru, rv = _residuals(u, c), _residuals(v, c)
            if np.ptp(ru) > 1e-12 and np.ptp(rv) > 1e-12:
                out[name] = float(pearsonr(ru, rv)[0])
    return out
