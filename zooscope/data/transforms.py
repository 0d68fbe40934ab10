"""Model input pipelines.

A model card carries its preprocessing as a plain mapping:

- ``{"kind": "native", "mean": [..], "std": [..]}``: recipe models trained here on the dataset's own
  pixels; a vectorised ``(x / 255 - mean) / std`` over in-memory arrays (no PIL round trip).
- ``{"kind": "timm", ...}``: a pretrained model's own data config, as returned by
  ``timm.data.resolve_model_data_config`` (input_size, interpolation, mean, std, crop_pct, crop_mode);
  torchvision weights are converted to the same form. Applied per image with ``timm.data.create_transform``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from zooscope.data.datasets import Dataset

__all__ = ["native_preprocess", "timm_preprocess", "declare_preprocess", "iter_batches", "pixels", "native_tensor"]


def native_preprocess(images: np.ndarray) -> dict[str, Any]:
    """Per-channel mean/std of uint8 images [n, H, W] or [n, H, W, 3], for recipe models."""
    x = images.astype(np.float64) / 255.0
    axes = (0, 1, 2)
    if x.ndim == 3:
        return {"kind": "native", "mean": [float(x.mean())], "std": [float(x.std())]}
    return {"kind": "native", "mean": x.mean(axis=axes).tolist(), "std": x.std(axis=axes).tolist()}


def timm_preprocess(data_config: dict[str, Any]) -> dict[str, Any]:
    """A JSON-able copy of a timm data config, tagged ``kind: timm``."""
    keep = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
    out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in data_config.items() if k in keep}
    return {"kind": "timm", **out}


def declare_preprocess(preprocess: dict[str, Any], declared: Mapping[str, Any]) -> dict[str, Any]:
    """``preprocess`` (a card's mapping) with what a study declares for the model (``models.<id>.preprocess`` as
    JSON data, its keys that are set) in place of its source's defaults: ``size`` becomes ``input_size`` [C, size,
    size] (C kept), the other keys are taken as given. Which keys apply to which source the study's schema checks
    (:class:`zooscope.config.PreprocessSpec`); the input's channels are known only here.

    Raises:
        ValueError: ``mean`` or ``std`` with another number of values than the input has channels.
    """
    out = dict(preprocess)
    channels = int(out["input_size"][0]) if out["kind"] == "timm" else len(out["mean"])
    for key in ("mean", "std"):
        if key in declared and len(declared[key]) != channels:
            raise ValueError(f"preprocess.{key}: {len(declared[key])} values for an input of {channels} channel(s)")
    for key, value in declared.items():
        if key == "size":
            out["input_size"] = [channels, value, value]
        else:
            out[key] = value
    return out


def pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 [n, H, W] or [n, H, W, C] -> float32 [n, C, H, W] in [0, 1] (a view in channels-last memory order
    for colour images)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)


def native_tensor(images: np.ndarray, preprocess: dict[str, Any]) -> torch.Tensor:
    """uint8 [n, H, W] or [n, H, W, C] -> float32 [n, C, H, W], normalised."""
    x = pixels(images)
    mean = torch.tensor(preprocess["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(preprocess["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std


class _PilDataset(torch.utils.data.Dataset):
    def __init__(self, dataset: Dataset, positions: np.ndarray, transform: Any, channels: int) -> None:
        self.dataset, self.positions, self.transform = dataset, positions, transform
        self.mode = "RGB" if channels == 3 else "L"

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.dataset.pil(int(self.positions[i])).convert(self.mode))


def iter_batches(
    dataset: Dataset,
    positions: np.ndarray,
    preprocess: dict[str, Any],
    *,
    batch_size: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[torch.Tensor]:
    """Yield float32 input batches [b, C, H, W] for ``positions``, in order; in page-locked memory with
    ``pin_memory`` (for copies to a GPU that overlap the next batch's preparation)."""
    if preprocess["kind"] == "native":
        if dataset.images is None:
            raise ValueError(f"{dataset.name}: a model with native preprocessing needs an in-memory dataset")
        for start in range(0, len(positions), batch_size):
            x = native_tensor(dataset.images[positions[start:start + batch_size]], preprocess)
            yield x.pin_memory() if pin_memory else x
        return
    if preprocess["kind"] != "timm":
        raise ValueError(f"unknown preprocessing kind {preprocess['kind']!r}; known: native, timm")
    from timm.data import create_transform

    cfg = {k: (tuple(v) if isinstance(v, list) else v) for k, v in preprocess.items() if k != "kind"}
    transform = create_transform(**cfg, is_training=False)
    loader = torch.utils.data.DataLoader(
        _PilDataset(dataset, positions, transform, channels=cfg["input_size"][0]),
        batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=pin_memory,
    )
    yield from loader
