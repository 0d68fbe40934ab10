"""Compressing a network: global magnitude pruning and int8 post-training quantisation, both through torch's own
APIs, and what a compressed network's weights say about it.

- :func:`prune_global`: ``torch.nn.utils.prune.global_unstructured`` with ``L1Unstructured`` over the weights of
  every convolution and linear layer taken together (Han et al. 2015; Blalock et al. 2020 call it global magnitude
  pruning); the masks stay on while a caller fine-tunes, :func:`make_permanent` folds them in.
- :func:`quantize_int8`: the post-training scheme of torch's x86 default (``get_default_qconfig("x86")``, whose
  observers are built here with the range spelled out, as torch now asks): every convolution and linear
  weight per output channel, symmetric int8 (``PerChannelMinMaxObserver``; the weight replaced by
  ``clamp(round(w / scale)) * scale``); every such layer's input per tensor, unsigned in x86's reduced range 0..127,
  the scale and zero point from a ``HistogramObserver`` over calibration batches. The network keeps float storage and
  quantises each layer's input as it runs (``torch.fake_quantize_per_tensor_affine``: the values int8 kernels see,
  with straight-through gradients for the attacks). The observed scales are buffers of the layers, so they travel in
  the weights file; :func:`attach_int8` rebuilds the hooks on a fresh network before loading it.
- :func:`sparsity`: the share of zero weights in those layers, counted from the weights.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["compressible", "sparsity", "prune_global", "make_permanent", "quantize_int8", "attach_int8",
           "INT8_BUFFERS"]

#: The buffers :func:`quantize_int8` adds to each convolution and linear layer (their input's quantisation).
INT8_BUFFERS = ("input_scale", "input_zero_point")
#: The unsigned range of a layer's quantised input: x86's reduced range (``reduce_range``), 0..127.
ACTIVATION_RANGE = (0, 127)


def compressible(model: nn.Module) -> list[nn.Module]:
    """The convolution and linear layers of ``model``, in module order: what pruning and quantisation act on."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))]


def sparsity(model: nn.Module) -> float:
    """The share of exactly zero weights over every convolution and linear layer's weight (biases, norms and
    embeddings left out)."""
    weights = [m.weight.detach() for m in compressible(model)]
    total = sum(w.numel() for w in weights)
    return float(sum(int((w == 0).sum()) for w in weights) / total) if total else 0.0


def prune_global(model: nn.Module, *, amount: float) -> nn.Module:
    """Zero the ``amount`` share of the smallest-magnitude weights over all convolution and linear layers together
    (``torch.nn.utils.prune.global_unstructured``, ``L1Unstructured``), in place; each layer keeps its mask
    (``weight = weight_orig * weight_mask``) until :func:`make_permanent`, so fine-tuning keeps the zeros."""
    from torch.nn.utils import prune

    layers = compressible(model)
    if not layers:
        raise ValueError(f"{type(model).__name__}: no convolution or linear layer to prune")
    prune.global_unstructured([(m, "weight") for m in layers], pruning_method=prune.L1Unstructured, amount=amount)
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every pruning mask into its weight (``torch.nn.utils.prune.remove``), in place: a plain network whose
    pruned weights are zeros."""
    from torch.nn.utils import prune

    for m in compressible(model):
        if prune.is_pruned(m) and hasattr(m, "weight_mask"):
            prune.remove(m, "weight")
    return model


def _quantize_input(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The layer's input on its int8 grid, in float32 whatever the input's type (autocast feeds bfloat16), then
    back in that type."""
    x = inputs[0]
    q = torch.fake_quantize_per_tensor_affine(x.float(), module.input_scale.float(), module.input_zero_point,
                                              *ACTIVATION_RANGE)
    return (q.to(x.dtype), *inputs[1:])


def attach_int8(model: nn.Module) -> nn.Module:
    """Give every convolution and linear layer the buffers of its input's quantisation (:data:`INT8_BUFFERS`,
    placeholders until a state dict fills them) and the pre-hook that applies it, in place; the network's own weights
    are loaded as they are (they hold the int8 values times their scales)."""
    for m in compressible(model):
        if not hasattr(m, "input_scale"):
            m.register_buffer("input_scale", torch.ones(()))
            m.register_buffer("input_zero_point", torch.zeros((), dtype=torch.int32))
            m.register_forward_pre_hook(_quantize_input)
    return model


def _activation_observer() -> torch.ao.quantization.ObserverBase:
    """The activation observer of torch's x86 default qconfig: a histogram observer, quint8 in :data:`ACTIVATION_RANGE`
    (its ``reduce_range``, spelled out as torch now asks)."""
    from torch.ao.quantization.observer import HistogramObserver

    return HistogramObserver(dtype=torch.quint8, quant_min=ACTIVATION_RANGE[0], quant_max=ACTIVATION_RANGE[1])


def _quantized_weight(weight: torch.Tensor) -> torch.Tensor:
    """The weight as int8 values times their per-output-channel scales (float), from the weight observer of torch's
    x86 default qconfig (per channel, symmetric qint8): torch's fake quantisation, which is quantise then dequantise."""
    from torch.ao.quantization.observer import PerChannelMinMaxObserver

    observer = PerChannelMinMaxObserver(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    observer(weight)
    scale, zero_point = observer.calculate_qparams()
    return torch.fake_quantize_per_channel_affine(weight, scale.float(), zero_point.int(), observer.ch_axis,
                                                  observer.quant_min, observer.quant_max)


@torch.no_grad()
def quantize_int8(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Post-training int8 quantisation of ``model`` in place (see the module's docstring); ``batches`` ([b, C, H, W]
    each, the network's own input) calibrate the activation ranges. Returns the model, in eval mode."""
    model.eval()
    layers = compressible(model)
    if not layers:
        raise ValueError(f"{type(model).__name__}: no convolution or linear layer to quantise")
    observers = {m: _activation_observer() for m in layers}
    handles = [m.register_forward_pre_hook(lambda mod, inputs: observers[mod](inputs[0].detach())) for m in layers]
    try:
        seen = 0
        for x in batches:
            model(x)
            seen += len(x)
    finally:
        for h in handles:
            h.remove()
    if not seen:
        raise ValueError("quantisation needs at least one calibration image")
    attach_int8(model)
    for m in layers:
        obs = observers[m]
        scale, zero_point = obs.calculate_qparams()
        m.input_scale.copy_(scale.reshape(()))
        m.input_zero_point.copy_(zero_point.reshape(()).to(torch.int32))
        m.weight.copy_(_quantized_weight(m.weight.detach()))
    return model
