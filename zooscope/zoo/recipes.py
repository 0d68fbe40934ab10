"""Training recipes for the embedded zoo (``source: recipe:<name>``).

Each recipe trains a network built by :mod:`zooscope.zoo.arch` on the dataset's train split (or the
disjoint subset; ``train.imbalance`` keeps a seeded share of one class's samples),
seeded by ``tags.seed`` so the same params give the same weights on the CPU:

- ``supervised``: cross-entropy (label smoothing, AdamW or SGD-Nesterov, one-cycle / cosine / constant LR,
  optional shift / flip / erase augmentation).
- ``distill``: knowledge distillation (Hinton et al. 2015) from a teacher declared inline, which is
  retrained here with its own seed (identical to the zoo model it copies).
- ``simclr``: SimCLR-style contrastive pretraining (NT-Xent, Chen et al. 2020); headless, probed later.
- ``autoencoder``: a denoising autoencoder's encoder; headless, probed later.
- ``random_features``: the randomly initialised, frozen network; headless and deliberately weak.
- ``prune`` and ``quantize`` derive a model from its parent (:func:`compress_recipe`, given the parent's network,
  which :mod:`zooscope.zoo.sources` fetches from ``train.parent``): global magnitude pruning with an optional
  fine-tune, and int8 post-training quantisation (:mod:`zooscope.zoo.compress`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zooscope.config import (Augment, AutoencoderTrain, DistillTrain, Imbalance, ModelSpec, PruneTrain, QuantizeTrain,
                             SimCLRTrain, SupervisedTrain, recipe_train_options)
from zooscope.data.datasets import Dataset
from zooscope.data.transforms import iter_batches, native_preprocess
from zooscope.zoo.arch import build_arch
from zooscope.zoo.compress import make_permanent, prune_global, quantize_int8, sparsity

__all__ = ["train_recipe", "compress_recipe", "augment_batch", "imbalanced"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def augment_batch(x: torch.Tensor, aug: Augment, *, background: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shift (up to ``aug.shift`` px), horizontal flip and square erasing of a batch [b, C, H, W]."""
    b, c, h, w = x.shape
    if aug.shift:
        s = aug.shift
        padded = background.view(1, c, 1, 1).expand(b, c, h + 2 * s, w + 2 * s).clone()
        padded[:, :, s:s + h, s:s + w] = x
        dy = torch.randint(0, 2 * s + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * s + 1, (b,), generator=generator)
        rows = (dy.view(b, 1) + torch.arange(h)).view(b, 1, h, 1).expand(b, c, h, w + 2 * s)
        x = padded.gather(2, rows)
        cols = (dx.view(b, 1) + torch.arange(w)).view(b, 1, 1, w).expand(b, c, h, w)
        x = x.gather(3, cols)
    if aug.hflip:
        flip = torch.rand(b, generator=generator) < aug.hflip
        x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
    if aug.erase:
        k = min(aug.erase_size, h, w)
        erase = torch.rand(b, generator=generator) < aug.erase
        y0 = torch.randint(0, h - k + 1, (b,), generator=generator).view(b, 1, 1, 1)
        x0 = torch.randint(0, w - k + 1, (b,), generator=generator).view(b, 1, 1, 1)
        ys, xs = torch.arange(h).view(1, 1, h, 1), torch.arange(w).view(1, 1, 1, w)
        box = (ys >= y0) & (ys < y0 + k) & (xs >= x0) & (xs < x0 + k) & erase.view(b, 1, 1, 1)
        x = torch.where(box, background.view(1, c, 1, 1), x)
    return x


def _cl(x: torch.Tensor) -> torch.Tensor:
    """Channels-last layout: 1.6x faster convolution training and 2x faster inference on the CPU here."""
    return x.contiguous(memory_format=torch.channels_last)


def _optimizer(model: nn.Module, opts: Any) -> torch.optim.Optimizer:
    if getattr(opts, "optimizer", "adamw") == "sgd":
        return torch.optim.SGD(model.parameters(), lr=opts.lr, momentum=opts.momentum, nesterov=True,
                               weight_decay=opts.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)


def _scheduler(opt: torch.optim.Optimizer, opts: Any, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    kind = getattr(opts, "schedule", "onecycle")
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opts.lr, total_steps=max(total, 1))
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opts: Any, *, loss_fn: LossFn,
         generator: torch.Generator, desc: str, progress: bool) -> dict[str, Any]:
    """Minibatch training loop shared by every recipe; returns a summary (epochs, steps, last loss).

    The summary goes into the model card, a DVC-tracked artifact: it holds no wall-clock times, so equal
    params give byte-identical cards.
    """
    from tqdm.auto import tqdm

    n = len(x)
    steps_per_epoch = math.ceil(n / opts.batch_size)
    opt = _optimizer(model, opts)
    sched = _scheduler(opt, opts, steps_per_epoch * opts.epochs)
    last = float("nan")
    model.to(memory_format=torch.channels_last).train()
    bar = tqdm(total=steps_per_epoch * opts.epochs, desc=desc, unit="step", disable=not progress, mininterval=1.0)
    for epoch in range(opts.epochs):
        perm = torch.randperm(n, generator=generator)
        running = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * opts.batch_size:(i + 1) * opts.batch_size]
            loss = loss_fn(model, x[idx], y[idx], generator)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item()
            bar.update(1)
        last = running / steps_per_epoch
        bar.set_postfix(epoch=epoch + 1, loss=f"{last:.4f}")
    bar.close()
    model.eval()
    return {"epochs": opts.epochs, "steps": steps_per_epoch * opts.epochs, "final_loss": round(last, 6),
            "train_samples": n}


def imbalanced(positions: np.ndarray, labels: np.ndarray, imbalance: Imbalance, *, num_classes: int) -> np.ndarray:
    """The training positions without the dropped samples of ``imbalance.label``: of its ``k`` samples,
    ``max(1, round(keep * k))`` stay, drawn without replacement by ``numpy.random.default_rng(seed)``; the order of
    ``positions`` is kept.

    Args:
        positions: int [n], the subset's positions in the dataset; labels: int [n], their labels.

    Raises:
        ValueError: the label is not a class of the dataset, or the subset has no sample of it.
    """
    if imbalance.label >= num_classes:
        raise ValueError(f"train.imbalance.label: class {imbalance.label} does not exist; the dataset has classes "
                         f"0..{num_classes - 1}")
    rare = np.flatnonzero(labels == imbalance.label)
    if not len(rare):
        raise ValueError(f"train.imbalance.label: the training subset has no sample of class {imbalance.label}")
    kept = np.random.default_rng(imbalance.seed).choice(rare, size=max(1, round(imbalance.keep * len(rare))),
                                                        replace=False)
    keep = np.ones(len(positions), bool)
    keep[rare] = False
    keep[kept] = True
    return positions[keep]


def _train_tensors(dataset: Dataset, subset: str, preprocess: dict[str, Any],
                   imbalance: Imbalance | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The training subset's inputs, as the network with ``preprocess`` is fed (float32 [n, C, H, W]), and labels."""
    if dataset.images is None and preprocess["kind"] == "native":
        raise ValueError(f"{dataset.name}: recipe models train on in-memory datasets (fashion-mnist, digits, torchvision)")
    pos = dataset.split(subset)
    if subset == "disjoint" and len(pos) < len(dataset.split("train")):
        raise ValueError(
            f"{dataset.name}: the disjoint training subset has {len(pos)} samples but train has "
            f"{len(dataset.split('train'))}; set dataset.train_size so that train + calibration (+ eval) "
            "leave another train_size samples"
        )
    if imbalance is not None:
        pos = imbalanced(pos, dataset.labels[pos], imbalance, num_classes=dataset.num_classes)
    x = torch.cat(list(iter_batches(dataset, pos, preprocess, batch_size=4096)))
    return x, torch.from_numpy(dataset.labels[pos])


def _background(preprocess: dict[str, Any]) -> torch.Tensor:
    """The normalised value of a black pixel, per channel (what shifts pad and erasing fills with)."""
    return -torch.tensor(preprocess["mean"]) / torch.tensor(preprocess["std"])


def _supervised_loss(opts: SupervisedTrain, background: torch.Tensor,
                     teacher: nn.Module | None = None, kd: DistillTrain | None = None) -> LossFn:
    def loss_fn(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        xb = _cl(augment_batch(xb, opts.augment, background=background, generator=g))
        logits = model(xb)
        ce = F.cross_entropy(logits, yb, label_smoothing=opts.label_smoothing)
        if teacher is None:
            return ce
        with torch.no_grad():
            t_logits = teacher(xb)
        t = kd.temperature
        soft = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(t_logits / t, 1), log_target=True,
                        reduction="batchmean") * t * t
        return kd.alpha * soft + (1 - kd.alpha) * ce

    return loss_fn


def _supervised(spec: Any, opts: SupervisedTrain, dataset: Dataset, pre: dict, seed: int, progress: bool,
                desc: str) -> tuple[nn.Module, dict]:
    chans, size, _ = dataset.image_shape
    torch.manual_seed(seed)
    model = build_arch(spec.arch, in_chans=chans, image_size=size, num_classes=dataset.num_classes)
    x, y = _train_tensors(dataset, opts.subset, pre, opts.imbalance)
    g = torch.Generator().manual_seed(seed)
    summary = _fit(model, x, y, opts, loss_fn=_supervised_loss(opts, _background(pre)), generator=g,
                   desc=desc, progress=progress)
    return model, summary


def _recipe_supervised(spec: ModelSpec, opts: SupervisedTrain, dataset: Dataset, pre: dict, progress: bool):
    return _supervised(spec, opts, dataset, pre, int(spec.tags.seed), progress, "train")


def _recipe_distill(spec: ModelSpec, opts: DistillTrain, dataset: Dataset, pre: dict, progress: bool):
    tspec = opts.teacher
    teacher, tsum = _supervised(tspec, tspec.train, dataset, pre, int(tspec.tags.seed), progress, "teacher")
    for p in teacher.parameters():
        p.requires_grad_(False)
    chans, size, _ = dataset.image_shape
    seed = int(spec.tags.seed)
    torch.manual_seed(seed)
    model = build_arch(spec.arch, in_chans=chans, image_size=size, num_classes=dataset.num_classes)
    x, y = _train_tensors(dataset, opts.subset, pre, opts.imbalance)
    g = torch.Generator().manual_seed(seed)
    loss = _supervised_loss(opts, _background(pre), teacher=teacher, kd=opts)
    summary = _fit(model, x, y, opts, loss_fn=loss, generator=g, desc="distill", progress=progress)
    summary["teacher"] = tsum
    return model, summary


def _nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised-temperature cross entropy over 2b views [b, d] x 2."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    n = len(z1)
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


_SSL_AUGMENT = Augment(shift=2, hflip=0.5, erase=0.3, erase_size=7)


def _encoder(spec: ModelSpec, dataset: Dataset) -> tuple[nn.Module, int, int]:
    """A headless network for the dataset's images, initialised from the model's seed: (encoder, its
    embedding width, the seed)."""
    chans, size, _ = dataset.image_shape
    seed = int(spec.tags.seed)
    torch.manual_seed(seed)
    encoder = build_arch(spec.arch, in_chans=chans, image_size=size, num_classes=0)
    hidden = encoder.fc.out_features if hasattr(encoder, "fc") else encoder.num_features
    return encoder, hidden, seed


def _fit_encoder(encoder: nn.Module, head: tuple[str, nn.Module], loss_fn: LossFn, dataset: Dataset, opts: Any,
                 pre: dict, seed: int, *, desc: str, progress: bool) -> tuple[nn.Module, dict]:
    """Train ``encoder`` with a named ``head`` (``model[name]`` in ``loss_fn``) that is dropped afterwards;
    the batch order is drawn from ``seed``."""
    both = nn.ModuleDict({"encoder": encoder, head[0]: head[1]})
    x, y = _train_tensors(dataset, opts.subset, pre, opts.imbalance)
    summary = _fit(both, x, y, opts, loss_fn=loss_fn, generator=torch.Generator().manual_seed(seed), desc=desc,
                   progress=progress)
    return encoder.eval(), summary


def _recipe_simclr(spec: ModelSpec, opts: SimCLRTrain, dataset: Dataset, pre: dict, progress: bool):
    encoder, hidden, seed = _encoder(spec, dataset)
    projector = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, opts.projection_dim))
    bg = _background(pre)

    def loss_fn(model: nn.Module, xb: torch.Tensor, _yb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        views = [_cl(augment_batch(xb, _SSL_AUGMENT, background=bg, generator=g)) for _ in range(2)]
        z = [model["projector"](model["encoder"](v)[:, -hidden:]) for v in views]
        return _nt_xent(z[0], z[1], opts.temperature)

    return _fit_encoder(encoder, ("projector", projector), loss_fn, dataset, opts, pre, seed, desc="simclr",
                        progress=progress)


def _recipe_autoencoder(spec: ModelSpec, opts: AutoencoderTrain, dataset: Dataset, pre: dict, progress: bool):
    encoder, hidden, seed = _encoder(spec, dataset)
    chans, size, _ = dataset.image_shape
    decoder = nn.Sequential(nn.Linear(hidden, 512), nn.ReLU(inplace=True), nn.Linear(512, chans * size * size))
    std = torch.tensor(pre["std"]).view(1, -1, 1, 1)

    def loss_fn(model: nn.Module, xb: torch.Tensor, _yb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        noisy = xb + opts.noise / std * torch.randn(xb.shape, generator=g)
        h = model["encoder"](_cl(noisy))[:, -hidden:]
        return F.mse_loss(model["decoder"](h), xb.flatten(1))

    return _fit_encoder(encoder, ("decoder", decoder), loss_fn, dataset, opts, pre, seed, desc="autoencoder",
                        progress=progress)


def _recipe_random_features(spec: ModelSpec, opts: Any, dataset: Dataset, pre: dict, progress: bool):
    encoder, _, _ = _encoder(spec, dataset)
    return encoder.eval(), {"epochs": 0, "frozen": True}


_RECIPES = {
    "supervised": _recipe_supervised,
    "distill": _recipe_distill,
    "simclr": _recipe_simclr,
    "autoencoder": _recipe_autoencoder,
    "random_features": _recipe_random_features,
}


def _parent_data(spec: ModelSpec, opts: PruneTrain | QuantizeTrain) -> tuple[str, Imbalance | None]:
    """(subset, imbalance) a compression trains or calibrates on: its own ``subset`` (with its imbalance) when given,
    else its parent's training data, followed up a chain of compressions (the train split for a model not trained
    here)."""
    if opts.subset is not None:
        return opts.subset, getattr(opts, "imbalance", None)
    parent = spec.parent
    if parent.parent is not None:
        return _parent_data(parent, recipe_train_options(parent))
    if parent.kind != "recipe":
        return "train", None
    parent_opts = recipe_train_options(parent)
    return getattr(parent_opts, "subset", "train"), getattr(parent_opts, "imbalance", None)


def _prune(spec: ModelSpec, opts: PruneTrain, model: nn.Module, dataset: Dataset, pre: dict,
           progress: bool) -> tuple[nn.Module, dict]:
    prune_global(model, amount=opts.sparsity)
    summary: dict[str, Any] = {"method": "prune", "target_sparsity": opts.sparsity, "finetune_epochs": opts.epochs}
    if opts.epochs:
        seed = int(spec.tags.seed)
        torch.manual_seed(seed)
        subset, imbalance = _parent_data(spec, opts)
        x, y = _train_tensors(dataset, subset, pre, imbalance)

        def loss_fn(net: nn.Module, xb: torch.Tensor, yb: torch.Tensor, _g: torch.Generator) -> torch.Tensor:
            return F.cross_entropy(net(_cl(xb)), yb)

        summary["finetune"] = _fit(model, x, y, opts, loss_fn=loss_fn, generator=torch.Generator().manual_seed(seed),
                                   desc="fine-tune", progress=progress)
    make_permanent(model.eval())
    return model, summary | {"sparsity": sparsity(model), "bits": 32}


def _quantize(spec: ModelSpec, opts: QuantizeTrain, model: nn.Module, dataset: Dataset, pre: dict,
              progress: bool) -> tuple[nn.Module, dict]:
    subset, imbalance = _parent_data(spec, opts)
    pos = dataset.split(subset)
    if imbalance is not None:
        pos = imbalanced(pos, dataset.labels[pos], imbalance, num_classes=dataset.num_classes)
    rng = np.random.default_rng(int(spec.tags.seed))
    chosen = np.sort(rng.choice(pos, size=min(opts.calibration_images, len(pos)), replace=False))
    quantize_int8(model, iter_batches(dataset, chosen, pre, batch_size=256))
    return model, {"method": "quantize", "bits": 8, "calibration_images": len(chosen), "sparsity": sparsity(model)}


#: The recipes that derive a model from its parent's network (``zooscope.config.COMPRESSION_RECIPES``).
_COMPRESSIONS = {"prune": _prune, "quantize": _quantize}


def compress_recipe(spec: ModelSpec, parent: nn.Module, *, dataset: Dataset, preprocess: dict[str, Any],
                    progress: bool = True) -> tuple[nn.Module, dict]:
    """Derive a ``recipe:prune`` or ``recipe:quantize`` model from its parent's network (changed in place; fed with
    the parent's ``preprocess``): returns (the network in eval mode, the compression's summary: method, bits, the
    sparsity counted from the weights, and the fine-tune's or the calibration's details)."""
    opts = recipe_train_options(spec)
    _deterministic_kernels()
    model = parent.to(memory_format=torch.contiguous_format)
    model, summary = _COMPRESSIONS[spec.target](spec, opts, model, dataset, preprocess, progress)
    return model.to(memory_format=torch.contiguous_format).eval(), summary


def _deterministic_kernels() -> None:
    """Make torch's eager kernels deterministic (warning where one has no deterministic implementation).

    This is the eager half of ``torch.use_deterministic_algorithms(True, warn_only=True)``; the public function
    also imports ``torch._inductor`` to set the compiler's flag, and no recipe compiles: a training process is
    0.5 s shorter without it (``torch._dynamo``, which ``torch.optim`` imports anyway, stays).
    """
    torch._C._set_deterministic_algorithms(True, warn_only=True)


def train_recipe(spec: ModelSpec, *, dataset: Dataset, progress: bool = True) -> tuple[nn.Module, dict, dict]:
    """Train a ``recipe:`` model; returns (model in eval mode, preprocessing config, training summary)."""
    if spec.target not in _RECIPES:
        raise ValueError(f"recipe:{spec.target} derives a model from its parent: fetch it (zooscope.zoo.sources."
                         "fetch_model), which calls compress_recipe")
    recipe = _RECIPES[spec.target]
    opts = recipe_train_options(spec)
    pre = native_preprocess(dataset.images[dataset.split("train")])
    _deterministic_kernels()
    model, summary = recipe(spec, opts, dataset, pre, progress)
    return model.to(memory_format=torch.contiguous_format), pre, summary
