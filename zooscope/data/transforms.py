"""Model input pipelines.

A model card carries its preprocessing as a plain mapping:

- ``{"kind": "native", "mean": [..], "std": [..]}``: recipe models trained here on the dataset's own
  pixels; a vectorised ``(x / 255 - mean) / std`` over in-memory arrays (no PIL round trip).
- ``{"kind": "timm", ...}``: a pretrained model's own data config, as returned by
  ``timm.data.resolve_model_data_config`` (input_size, interpolation, mean, std, crop_pct, crop_mode);
  torchvision weights are converted to the same form. Applied with ``timm.data.create_transform``: its resize
  and crop once per dataset and configuration (:func:`decoded_inputs`, memoised: the models that share a
  configuration share one decode), its ``ToTensor`` and ``Normalize`` per batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from zooscope.data.datasets import Dataset

__all__ = ["native_preprocess", "timm_preprocess", "declare_preprocess", "decoded_inputs", "iter_batches", "pixels",
           "native_tensor"]


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
    def __init__(self, dataset: Dataset, positions: np.ndarray, transform: Any, mode: str) -> None:
        self.dataset, self.positions, self.transform, self.mode = dataset, positions, transform, mode

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> np.ndarray:
        return np.array(self.transform(self.dataset.pil(int(self.positions[i])).convert(self.mode)))


def _timm_steps(preprocess: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """timm's evaluation transform for ``preprocess``, split before its ``ToTensor``: (the steps on PIL images:
    resize and crop; the steps on tensors: ToTensor, Normalize)."""
    from timm.data import create_transform

    cfg = {k: (tuple(v) if isinstance(v, list) else v) for k, v in preprocess.items() if k != "kind"}
    steps = list(create_transform(**cfg, is_training=False).transforms)
    at = next(i for i, step in enumerate(steps) if type(step).__name__ in ("ToTensor", "MaybeToTensor"))
    return steps[:at], steps[at:]


def _source_key(dataset: Dataset, positions: np.ndarray) -> str:
    """What the images at ``positions`` are: their files' paths, sizes and modification times, or their bytes."""
    if dataset.paths is not None:
        from zooscope.data.memo import files_key

        return files_key([dataset.paths[p] for p in positions])
    import hashlib

    rows = np.ascontiguousarray(dataset.images[positions])
    return f"{rows.shape}|{hashlib.sha1(rows).hexdigest()}"


def decoded_inputs(dataset: Dataset, preprocess: dict[str, Any], *,
                   num_workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The images of ``dataset``'s splits resized and cropped as timm's transform for ``preprocess`` does, before
    ``ToTensor``: (positions int64 [m], sorted, of every sample in a split; uint8 [m, H, W, C], or [m, H, W] for
    one channel, row i the image at positions[i]).

    Decoded once per dataset and configuration (size, crop, interpolation; not the normalisation) and memoised
    (:mod:`zooscope.data.memo`, written row by row into a memory-mapped file, keyed with the versions of timm,
    torchvision and Pillow that decode), so every model with the same configuration, every split and the
    mistakes stage's attacks read the same array, memory-mapped. ``num_workers`` processes decode when it is built.
    """
    return _decoded(dataset, _timm_steps(preprocess)[0], input_size=preprocess["input_size"],
                    num_workers=num_workers)


def _decoded(dataset: Dataset, pil_steps: list[Any], *, input_size: list[int],
             num_workers: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`decoded_inputs` from the PIL steps of timm's transform, for inputs [C, H, W] of ``input_size``."""
    import PIL
    import timm
    import torchvision
    from torchvision.transforms import Compose

    from zooscope.data.memo import memoised_rows

    mode = "RGB" if input_size[0] == 3 else "L"
    positions = np.unique(np.concatenate(list(dataset.splits.values()))).astype(np.int64)
    size = [int(v) for v in input_size[1:]]

    def fill(out: np.ndarray) -> None:
        from tqdm.auto import tqdm

        loader = torch.utils.data.DataLoader(_PilDataset(dataset, positions, Compose(pil_steps), mode), batch_size=64,
                                             num_workers=num_workers)
        at = 0
        for batch in tqdm(loader, desc=f"decode images for {size[-1]} px", unit="batch", mininterval=1.0,
                          disable=len(loader) < 20):
            out[at:at + len(batch)] = batch.numpy()
            at += len(batch)

    versions = f"timm {timm.__version__}, torchvision {torchvision.__version__}, Pillow {PIL.__version__}"
    key = f"{pil_steps!r}|{mode}|{versions}|{_source_key(dataset, positions)}"
    shape = (len(positions), *size, 3) if mode == "RGB" else (len(positions), *size)
    return positions, memoised_rows("inputs", key, shape=shape, dtype=np.dtype(np.uint8), fill=fill)


def iter_batches(
    dataset: Dataset,
    positions: np.ndarray,
    preprocess: dict[str, Any],
    *,
    batch_size: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[torch.Tensor]:
    """Yield float32 input batches [b, C, H, W] for ``positions`` (of samples in the dataset's splits), in order;
    in page-locked memory with ``pin_memory`` (faster copies to a GPU)."""
    if preprocess["kind"] == "native":
        if dataset.images is None:
            raise ValueError(f"{dataset.name}: a model with native preprocessing needs an in-memory dataset")
        for start in range(0, len(positions), batch_size):
            x = native_tensor(dataset.images[positions[start:start + batch_size]], preprocess)
            yield x.pin_memory() if pin_memory else x
        return
    if preprocess["kind"] != "timm":
        raise ValueError(f"unknown preprocessing kind {preprocess['kind']!r}; known: native, timm")
    from torchvision.transforms import Compose

    pil_steps, tensor_steps = _timm_steps(preprocess)
    decoded, crops = _decoded(dataset, pil_steps, input_size=preprocess["input_size"], num_workers=num_workers)
    rows = np.searchsorted(decoded, positions)
    if not np.array_equal(decoded[np.minimum(rows, len(decoded) - 1)], positions):
        raise ValueError(f"{dataset.name}: positions outside the dataset's splits have no decoded image")
    to_tensor = Compose(tensor_steps)
    for start in range(0, len(rows), batch_size):
        x = torch.stack([to_tensor(np.array(crops[r])) for r in rows[start:start + batch_size]])
        yield x.pin_memory() if pin_memory else x
