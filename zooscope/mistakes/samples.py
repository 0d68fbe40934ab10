"""Which sample ids a study's splits hold: the id ranges of each split (what ``zooscope samples`` prints and an
unknown id's error names), finding one sample, and the samples a model gets wrong.

Sample ids are the dataset's (:mod:`zooscope.data.datasets`): for Fashion-MNIST, train images 0..59999 and test
images 60000..69999. The study's train and calibration splits are seeded subsets of the official training images,
so their ids are scattered over 0..59999; the eval split is (a subset of) the test images.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from zooscope.data.datasets import SPLITS

__all__ = ["split_ids", "describe_ids", "valid_ids", "sample_position", "locate_sample", "wrong_ids", "select_samples"]

#: Ids that form at most this many contiguous runs are described by their runs; others by their span.
_MAX_RUNS = 3


def split_ids(dataset) -> dict[str, np.ndarray]:
    """split -> int64 [n_split] sample ids of the study's train, calibration and eval splits, in split order."""
    return {s: dataset.sample_ids[dataset.split(s)].astype(np.int64) for s in SPLITS}


def describe_ids(ids: np.ndarray) -> str:
    """``ids`` (int [n]) in a few words: their count and contiguous runs when there are few
    (``10,000 ids: 60000..69999``), else their count and span (``5,000 ids within 0..59990``)."""
    ids = np.unique(np.asarray(ids, dtype=np.int64))
    if len(ids) == 0:
        return "no ids"
    breaks = np.flatnonzero(np.diff(ids) != 1)
    starts, ends = ids[np.r_[0, breaks + 1]], ids[np.r_[breaks, len(ids) - 1]]
    count = f"{len(ids):,} id{'s' if len(ids) > 1 else ''}"
    if len(starts) <= _MAX_RUNS:
        return f"{count}: " + ", ".join(f"{a}..{b}" if a != b else f"{a}" for a, b in zip(starts, ends))
    return f"{count} within {ids[0]}..{ids[-1]}"


def valid_ids(dataset) -> str:
    """One line naming each split's ids (``train: 5,000 ids within 0..59990; ...; eval: 10,000 ids: 60000..69999``)."""
    return "; ".join(f"{s}: {describe_ids(ids)}" for s, ids in split_ids(dataset).items())


def sample_position(dataset, sample_id: int) -> int:
    """The position of ``sample_id`` in the dataset's arrays.

    Raises:
        ValueError: the dataset has no such id (naming it and the valid ids of each split).
    """
    where = np.flatnonzero(dataset.sample_ids == sample_id)
    if len(where) == 0:
        raise ValueError(f"no sample with id {sample_id} in {dataset.name}; valid ids: {valid_ids(dataset)} "
                         "(zooscope samples lists them)")
    return int(where[0])


def locate_sample(dataset, sample_id: int) -> tuple[str, int]:
    """(the split holding ``sample_id``: train, calibration or eval; its row in that split).

    Raises:
        ValueError: no sample has that id, or it lies in none of those splits (both name the id and the valid ids).
    """
    pos = sample_position(dataset, sample_id)
    for split in SPLITS:
        row = np.flatnonzero(dataset.split(split) == pos)
        if len(row):
            return split, int(row[0])
    raise ValueError(f"sample {sample_id} is in none of the study's splits ({', '.join(SPLITS)}); valid ids: "
                     f"{valid_ids(dataset)} (zooscope samples lists them)")


def wrong_ids(predictions_dir: str | Path, model: str) -> dict[str, np.ndarray]:
    """split -> int64 sample ids that ``model`` predicts wrongly, for the splits with predictions (calibration,
    eval), from ``<predictions_dir>/<model>/<split>.parquet``.

    Raises:
        FileNotFoundError: a predictions table is missing (naming it and the stage to run).
    """
    import polars as pl

    from zooscope.artifacts import prediction_files

    out = {}
    for split in ("calibration", "eval"):
        path = prediction_files(Path(predictions_dir) / model, split)[0]
        if not path.exists():
            raise FileNotFoundError(f"{path}: predictions not found; run predict@{model} first")
        frame = pl.read_parquet(path, columns=["sample_id", "correct"])
        out[split] = frame.filter(~pl.col("correct"))["sample_id"].to_numpy().astype(np.int64)
    return out


def select_samples(dataset, *, split: str | None = None, label: int | None = None,
                   keep: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """split -> int64 sample ids of that split (in split order) that pass every filter given.

    Args:
        split: only this split (train, calibration or eval); None: all three.
        label: only samples of this class index.
        keep: split -> the only ids to keep there (e.g. :func:`wrong_ids`); splits it lacks are left out.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    out = {}
    for s in SPLITS if split is None else (split,):
        if keep is not None and s not in keep:
            continue
        pos = dataset.split(s)
        mask = np.ones(len(pos), dtype=bool) if label is None else dataset.labels[pos] == label
        if keep is not None:
            mask &= np.isin(dataset.sample_ids[pos], keep[s])
        out[s] = dataset.sample_ids[pos[mask]].astype(np.int64)
    return out
