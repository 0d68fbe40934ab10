"""One model on the shifted sets (the ``shifted@<model>`` stage): its logits on each set, from its head or, for a
headless model, its probe, each set's logits kept in a cache keyed by everything they come from, and the
temperature-scaled predictions and quality metrics of each set."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zooscope.config import EmbedSettings
from zooscope.data.datasets import Dataset
from zooscope.data.memo import files_key
from zooscope.data import transforms
from zooscope.data.transforms import iter_batches
from zooscope.models import embed as embed_code
from zooscope.models import extract, pick_dtype
from zooscope.models import probe as probe_code
from zooscope.models.calibration import ece, nll, softmax
from zooscope.models.probe import LinearProbe
from zooscope.paircache import cached_arrays, code_digest, digest
from zooscope.shift import corruptions, sets
from zooscope.shift.sets import ShiftedSet, shifted_dataset
from zooscope.zoo import embedding as embedding_code

__all__ = ["shifted_logits", "set_predictions"]


def _logits(model: nn.Module, data: Dataset, *, preprocess: dict[str, Any], probe: LinearProbe | None,
            settings: EmbedSettings, device: torch.device, progress: bool, desc: str) -> np.ndarray:
    pos = data.split("eval")
    batches = iter_batches(data, pos, preprocess, batch_size=settings.batch_size, num_workers=settings.num_workers,
                           pin_memory=device.type == "cuda")
    emb, logits = extract(model, batches, n=len(pos), with_logits=probe is None, device=device,
                          dtype=pick_dtype(settings.precision, device), progress=progress, desc=desc)
    return logits if probe is None else probe.logits(emb)


def shifted_logits(model: nn.Module, dataset: Dataset, positions: np.ndarray, shifted: list[ShiftedSet], *,
                   preprocess: dict[str, Any], probe: LinearProbe | None, settings: EmbedSettings, seed: int,
                   device: torch.device, identity: Mapping[str, Any], cache: str | Path | None,
                   progress: bool = True, desc: str = "shifted") -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """The model on each shifted set: (set name -> logits float32 [n_set, C], set name -> labels int64 [n_set], how
    many sets were computed; the rest came from ``cache``). A corrupted set has ``len(positions)`` rows, a folder
    its own images.

    Args:
        positions: the eval positions the corrupted sets corrupt (:func:`zooscope.shift.sets.shift_positions`).
        probe: the headless model's probe (its logits on the set's embeddings), or None for the model's head.
        identity: what the logits depend on besides the set, its images and the code that corrupts and embeds them
            (the weights' and probe's hashes, the preprocessing, the device, threads): part of every key.
    """
    folders = {s: shifted_dataset(dataset, positions, s, seed=seed) for s in shifted if s.folder is not None}
    corrupted = _digest(np.asarray(dataset.images[positions])) if dataset.images is not None else None
    code = code_digest(corruptions, sets, sys.modules[__name__], transforms, embed_code, probe_code, embedding_code)

    def source(s: ShiftedSet) -> str | None:
        """What the set's images are made from: the eval images it corrupts, or the folder's files or decoded images."""
        if s.folder is None:
            return corrupted
        data = folders[s]
        return files_key(list(data.paths)) if data.paths is not None else _digest(np.asarray(data.images))

    keys = {s: digest("shifted", code, dict(identity), s.corruption, s.severity, seed, source(s),
                      _digest(dataset.sample_ids[positions]), settings.batch_size, settings.precision)
            for s in shifted}

    def compute(s: ShiftedSet) -> dict[str, np.ndarray]:
        data = folders.get(s) or shifted_dataset(dataset, positions, s, seed=seed)
        return {"logits": _logits(model, data, preprocess=preprocess, probe=probe, settings=settings, device=device,
                                  progress=progress, desc=f"{desc} {s.name}")}

    got, computed = cached_arrays(cache, keys, compute, desc=f"{desc}: shifted sets", progress=progress, unit="set")
    labels = {s.name: (folders[s].labels if s in folders else dataset.labels[positions]) for s in shifted}
    return {s.name: np.asarray(got[s]["logits"]) for s in shifted}, labels, computed


def _digest(array: np.ndarray) -> str:
    """sha256 of an array's shape, dtype and bytes."""
    import hashlib

    array = np.ascontiguousarray(array)
    return hashlib.sha256(f"{array.shape}|{array.dtype}|".encode() + array.tobytes()).hexdigest()


def set_predictions(logits: np.ndarray, labels: np.ndarray, *, temperature: float | None,
                    ece_bins: int) -> tuple[np.ndarray, dict[str, float]]:
    """One set's temperature-scaled probabilities float32 [n, C] and its top-1, NLL and ECE, from its logits [n, C].

    The temperature is the model's clean one, fitted on the calibration split (1 when it has none): a shifted set
    has no labels to fit its own on, and how calibration degrades off the test set is what its ECE shows.
    """
    t = 1.0 if temperature is None else temperature
    probs = softmax(logits, temperature=t)
    metrics = {"top1": float((probs.argmax(1) == labels).mean()), "nll": nll(logits, labels, temperature=t),
               "ece": ece(probs, labels, bins=ece_bins)}
    return probs.astype(np.float32), metrics
