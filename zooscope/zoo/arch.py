"""Networks that recipes build for a dataset's own image size (no pretrained weights).

Every network exposes timm's interface: ``forward_features(x)``, ``forward_head(f, pre_logits=...)``,
``num_classes`` and ``num_features``, so one embedding path serves recipe and timm models alike.
``num_classes=0`` builds a headless network (its ``forward_head`` returns the embedding).
"""

from __future__ import annotations

import torch
from torch import nn

from zooscope.config import ArchSpec

__all__ = ["build_arch", "SmallCNN", "MLP"]


class SmallCNN(nn.Module):
    """``len(widths)`` x (conv3x3-BN-ReLU-maxpool2), then FC -> ReLU -> (dropout) -> classifier.

    The embedding is the hidden FC layer ("hidden", ``hidden`` dims) or the flattened last conv
    block concatenated with it ("conv+hidden"), the probe input used for self-supervised encoders.
    """

    def __init__(self, *, in_chans: int, image_size: int, num_classes: int, widths: tuple[int, ...],
                 hidden: int, dropout: float = 0.0, embedding: str = "hidden") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, size = in_chans, image_size
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            c = w
        self.features = nn.Sequential(*layers)
        self.flat_dim = c * size * size
        self.fc = nn.Linear(self.flat_dim, hidden)
        self.drop = nn.Dropout(dropout)
        self.embedding = embedding
        self.num_classes = num_classes
        self.num_features = hidden + (self.flat_dim if embedding == "conv+hidden" else 0)
        self.head = nn.Linear(hidden, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, f: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        flat = f.flatten(1)
        h = torch.relu(self.fc(flat))
        if pre_logits or not self.num_classes:
            return torch.cat([flat, h], dim=1) if self.embedding == "conv+hidden" else h
        return self.head(self.drop(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class MLP(nn.Module):
    """Flatten -> (Linear-ReLU-Dropout) per hidden width -> classifier; the embedding is the last hidden layer."""

    def __init__(self, *, in_dim: int, num_classes: int, hidden: tuple[int, ...], dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            d = h
        self.body = nn.Sequential(*layers)
        self.num_classes = num_classes
        self.num_features = d
        self.head = nn.Linear(d, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward_head(self, f: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return f if pre_logits else self.head(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _cnn(spec: ArchSpec, in_chans: int, image_size: int, num_classes: int) -> nn.Module:
    hidden = spec.hidden if isinstance(spec.hidden, int) else spec.hidden[-1]
    return SmallCNN(in_chans=in_chans, image_size=image_size, num_classes=num_classes, widths=spec.widths,
                    hidden=hidden, dropout=spec.dropout, embedding=spec.embedding)


def _mlp(spec: ArchSpec, in_chans: int, image_size: int, num_classes: int) -> nn.Module:
    hidden = (spec.hidden,) if isinstance(spec.hidden, int) else spec.hidden
    return MLP(in_dim=in_chans * image_size * image_size, num_classes=num_classes, hidden=hidden, dropout=spec.dropout)


def _timm_resnet(spec: ArchSpec, in_chans: int, image_size: int, num_classes: int) -> nn.Module:
    """timm's ResNet with BasicBlocks, widths ``spec.widths``, and a 3x3 stride-2 stem without max-pool (small images)."""
    from timm.models.resnet import BasicBlock, ResNet

    widths = spec.widths if len(spec.widths) == len(spec.layers) else tuple(spec.widths[0] * 2**i for i in range(len(spec.layers)))
    # a 'deep' stem of width w/2 makes timm size bn1 and layer1's input for w channels; its 3-conv
    # stem is then replaced by one 3x3 stride-2 conv (small images need neither the 7x7 conv nor the pool)
    model = ResNet(block=BasicBlock, layers=spec.layers, channels=widths, in_chans=in_chans,
                   num_classes=num_classes, stem_type="deep", stem_width=widths[0] // 2)
    model.conv1 = nn.Conv2d(in_chans, widths[0], kernel_size=3, stride=2, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def _timm_vit(spec: ArchSpec, in_chans: int, image_size: int, num_classes: int) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=image_size, patch_size=spec.patch, in_chans=in_chans, num_classes=num_classes,
                             embed_dim=spec.dim, depth=spec.depth, num_heads=spec.heads, mlp_ratio=spec.mlp_ratio)


_BUILDERS = {"cnn": _cnn, "mlp": _mlp, "timm_resnet": _timm_resnet, "timm_vit": _timm_vit}


def build_arch(spec: ArchSpec, *, in_chans: int, image_size: int, num_classes: int) -> nn.Module:
    """Build the network ``spec`` describes for [*, in_chans, image_size, image_size] inputs."""
    try:
        builder = _BUILDERS[spec.kind]
    except KeyError:
        raise ValueError(f"unknown arch.kind {spec.kind!r}; known: {', '.join(_BUILDERS)}") from None
    return builder(spec, in_chans, image_size, num_classes)
