"""How a network gives its embedding: timm-style networks (timm models and the recipe networks) through
``forward_head(f, pre_logits=True)``; other networks (torchvision) as the input of their last ``nn.Linear``
layer, captured with a forward hook."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["EmbedFn", "embedding_fn"]

#: inputs [b, C, H, W] -> (embedding [b, d], logits [b, c]).
EmbedFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def embedding_fn(model: nn.Module) -> EmbedFn:
    """A function mapping an input batch to (embedding [b, d], logits [b, c]) for ``model``."""
    if hasattr(model, "forward_head") and hasattr(model, "forward_features"):
        def timm_style(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            f = model.forward_features(x)
            return model.forward_head(f, pre_logits=True), model.forward_head(f)

        return timm_style
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__}: no forward_head and no nn.Linear classifier to take the embedding from")
    captured: list[torch.Tensor] = []
    linears[-1].register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))

    def hooked(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        captured.clear()
        logits = model(x)
        return captured[-1].flatten(1), logits

    return hooked
