"""The shifted eval sets a study declares (``shift`` in params.yaml), the eval subset they corrupt, and one set's
images as a dataset every model's own preprocessing reads."""

from __future__ import annotations

import dataclasses

import numpy as np

from zooscope.config import ShiftSettings
from zooscope.data.datasets import Dataset, load_folder_like
from zooscope.shift.corruptions import corrupt

__all__ = ["ShiftedSet", "shifted_sets", "shift_positions", "shifted_dataset"]


@dataclasses.dataclass(frozen=True)
class ShiftedSet:
    """One shifted eval set: the eval images under ``corruption`` at ``severity`` (named ``<corruption>-<severity>``),
    or the images of ``folder`` (named as the study names it)."""

    name: str
    corruption: str | None = None
    severity: int | None = None
    folder: str | None = None


def shifted_sets(settings: ShiftSettings) -> list[ShiftedSet]:
    """Every (corruption, severity) the study declares, in its order, then every folder."""
    return [*(ShiftedSet(f"{name}-{severity}", name, severity) for name, severities in settings.corruptions.items()
              for severity in severities),
            *(ShiftedSet(name, folder=folder) for name, folder in settings.folders.items())]


def shift_positions(dataset: Dataset, *, size: int | None, seed: int) -> np.ndarray:
    """Positions (int64, sorted) of the eval samples the shifted sets corrupt: all of the eval split, or a subset of
    ``size`` drawn with ``seed`` (the same for every set and model)."""
    pos = dataset.split("eval")
    if size is None or size >= len(pos):
        return pos
    rng = np.random.default_rng([seed, len(pos)])
    return np.sort(pos[rng.choice(len(pos), size=size, replace=False)])


def shifted_dataset(dataset: Dataset, positions: np.ndarray, shifted: ShiftedSet, *, seed: int) -> Dataset:
    """A shifted set as a dataset whose ``eval`` split is all of it, ready for a model's own preprocessing: the eval
    images at ``positions`` under the set's corruption (their labels and sample ids the originals'), or the set's
    folder (:func:`zooscope.data.datasets.load_folder_like`)."""
    if shifted.folder is not None:
        return load_folder_like(dataset, shifted.folder, what=f"shift.folders.{shifted.name}")
    if dataset.images is None:  # the schema refuses such a study; a dataset built by hand may still get here
        raise ValueError(f"shift.corruptions: {dataset.name} keeps its images in files, and corruptions apply to images "
                         "held in memory (fashion-mnist, digits, torchvision sets, or an image folder with "
                         "dataset.image_size)")
    images = corrupt(np.asarray(dataset.images[positions]), name=shifted.corruption, severity=shifted.severity,
                     seed=seed)
    return Dataset(name=f"{dataset.name} ({shifted.name})", classes=dataset.classes,
                   sample_ids=dataset.sample_ids[positions], labels=dataset.labels[positions],
                   splits={"eval": np.arange(len(positions), dtype=np.int64)}, images=images)
