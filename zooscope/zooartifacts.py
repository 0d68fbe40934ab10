"""The per-model artifacts that the pairwise stages read: model cards and aligned eval predictions.

Pairwise numbers are only meaningful when both models saw the same samples in the same order, so
the predictions of every model are checked against the first one's sample ids and labels once,
before any pair is computed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from zooscope.io import read_json

__all__ = ["Predictions", "read_cards", "read_predictions", "unordered_pairs"]


@dataclass(frozen=True)
class Predictions:
    """Every model's eval predictions, aligned on the same samples.

    Attributes:
        models: model ids, in study order (index m below).
        sample_ids: int64 [n]; labels: int64 [n].
        pred: int64 [n_models, n] predicted classes.
        probs: per model, the ``eval_probs.npy`` file (float [n, num_classes], temperature-scaled).
    """

    models: tuple[str, ...]
    sample_ids: np.ndarray
    labels: np.ndarray
    pred: np.ndarray
    probs: tuple[Path, ...]

    @property
    def correct(self) -> np.ndarray:
        """bool [n_models, n]."""
        return self.pred == self.labels


def read_cards(models_dir: str | Path, ids: list[str]) -> dict[str, dict[str, Any]]:
    """``card.json`` of each model under ``models_dir/<id>/``."""
    return {mid: read_json(Path(models_dir) / mid / "card.json") for mid in ids}


def read_predictions(predictions_dir: str | Path, ids: list[str]) -> Predictions:
    """Read ``<predictions_dir>/<id>/eval.parquet`` of each model and check they are aligned.

    Raises:
        ValueError: a model's sample ids or labels differ from the first model's (naming the model).
    """
    root = Path(predictions_dir)
    frames = {}
    for mid in ids:
        path = root / mid / "eval.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path}: predictions not found; run predict@{mid} first")
        frames[mid] = pl.read_parquet(path, columns=["sample_id", "label", "pred"])
    first = frames[ids[0]]
    for mid, frame in frames.items():
        if not (frame["sample_id"].equals(first["sample_id"]) and frame["label"].equals(first["label"])):
            raise ValueError(f"{root / mid / 'eval.parquet'}: sample ids or labels differ from {ids[0]}'s; "
                             "every model must predict the same eval samples in the same order (re-run predict)")
    return Predictions(
        models=tuple(ids),
        sample_ids=first["sample_id"].to_numpy().astype(np.int64),
        labels=first["label"].to_numpy().astype(np.int64),
        pred=np.stack([frames[mid]["pred"].to_numpy() for mid in ids]).astype(np.int64),
        probs=tuple(root / mid / "eval_probs.npy" for mid in ids),
    )


def unordered_pairs(ids: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """Every unordered pair (a, b), a before b in ``ids``' order: the rows of the pairwise tables."""
    if len(ids) < 2:
        raise ValueError(f"pairwise analysis needs at least two models; the study has {len(ids)}")
    return list(itertools.combinations(ids, 2))
