"""The embed stage's science: one forward pass per split, giving embeddings and (when the model has a head
for the dataset's labels) logits. How a network gives its embedding is ``zooscope.zoo.embedding``."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from zooscope._checks import check_rows, is_constant
from zooscope.config import EmbedSettings
from zooscope.data.datasets import SPLITS, Dataset
from zooscope.data.transforms import iter_batches
from zooscope.zoo.embedding import embedding_fn

__all__ = ["extract", "embed_splits", "pick_device", "pick_dtype"]


def pick_device(setting: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else the CPU."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ValueError("embed.device is 'cuda' but torch sees no GPU; use 'auto' or 'cpu'")
    return torch.device(setting)


def pick_dtype(setting: str, device: torch.device) -> torch.dtype:
    """``embed.precision`` on ``device``: ``auto`` is bfloat16 on a CUDA GPU that computes in it natively
    (Ampere and later; older ones would emulate it, slowly) and float32 elsewhere."""
    if setting == "auto":
        native = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[setting]


def extract(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    *,
    n: int,
    with_logits: bool,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    progress: bool = True,
    desc: str = "embed",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run ``model`` over ``batches`` (``n`` samples in all) under ``inference_mode``, channels_last, on
    ``device``; a ``dtype`` other than float32 runs the forward pass under ``torch.autocast`` in that type.

    Returns:
        (embeddings float32 [n, d], logits float32 [n, c] or None when ``with_logits`` is False).
    """
    from tqdm.auto import tqdm

    model = model.eval().to(device).to(memory_format=torch.channels_last)
    fn = embedding_fn(model)
    embs: np.ndarray | None = None
    logits: np.ndarray | None = None
    pos = 0
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    with (torch.inference_mode(), autocast,
          tqdm(total=n, desc=desc, unit="img", disable=not progress, mininterval=1.0) as bar):
        for x in batches:
            x = x.to(device, non_blocking=True)
            if x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            e, lg = fn(x)
            e = e.float().cpu().numpy()
            if embs is None:
                embs = np.empty((n, e.shape[1]), np.float32)
                logits = np.empty((n, lg.shape[1]), np.float32) if with_logits else None
            embs[pos:pos + len(e)] = e
            if with_logits:
                logits[pos:pos + len(e)] = lg.float().cpu().numpy()
            pos += len(e)
            bar.update(len(e))
    if pos != n:
        raise RuntimeError(f"{desc}: expected {n} samples from the data loader, got {pos}")
    if embs is None:
        raise ValueError(f"{desc}: the split is empty")
    return embs, logits


def embed_splits(model: nn.Module, dataset: Dataset, *, preprocess: dict[str, Any], with_logits: bool,
                 settings: EmbedSettings, device: torch.device, progress: bool = True,
                 desc: str = "embed") -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
    """:func:`extract` on each split of :data:`zooscope.data.datasets.SPLITS` in turn, under the model's own
    ``preprocess`` (its card's): yields (split, embeddings float32 [n_split, d], logits float32 [n_split, c]
    or None). Embeddings or logits with NaN, inf or all-zero rows are refused (naming the model and split); constant
    ones (every sample the same) get a warning on stderr naming what will be undefined."""
    constant: list[str] = []
    for split in SPLITS:
        pos = dataset.split(split)
        batches = iter_batches(dataset, pos, preprocess, batch_size=settings.batch_size, num_workers=settings.num_workers,
                               pin_memory=device.type == "cuda")
        emb, logits = extract(model, batches, n=len(pos), with_logits=with_logits, device=device,
                              dtype=pick_dtype(settings.precision, device), progress=progress, desc=f"{desc} {split}")
        check_rows(f"{desc} {split} embeddings", emb)
        if logits is not None:
            check_rows(f"{desc} {split} logits", logits)
        if is_constant(emb):
            constant.append(f"{split} embeddings")
        if logits is not None and is_constant(logits):
            constant.append(f"{split} logits")
        yield split, emb, logits
    if constant:
        print(f"warning: {desc}: {', '.join(constant)} are the same for every sample: the model cannot tell images apart, "
              "so CKA and mutual k-NN with it are undefined (written as missing) and it predicts one class", file=sys.stderr)
