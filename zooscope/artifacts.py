"""The artifact layout: the name of every file a stage writes, how later stages and commands read them back,
and the aligned views the pairwise stages use.

``dvc.yaml`` chooses each stage's folders (``--out artifacts/models/<id>``); the file names inside them are
fixed here, so a stage, the report and the commands agree on them. Commands that are not stages
(``zooscope table``, ``diff``, ``explain``, the Prefect flow) read the default locations below, which are
the ones ``dvc.yaml`` uses. The default study's tree:

    artifacts/inputs/             models/<id>, dataset: links to the local files a stage reads   inputs
    artifacts/settings.json       the study, every default filled in: what stages read           inputs
    artifacts/settings/<id>.json  each model's entry of it (fetch@<id> depends on its own)       inputs
    artifacts/models/<id>/        weights.safetensors, card.json                       fetch@<id>
    artifacts/embeddings/<id>/    <split>.npy, <split>_logits.npy (with a head)          embed@<id>
    artifacts/probes/<id>/        probe.json, probe.safetensors, <split>_logits.npy      probe@<id>
    artifacts/predictions/<id>/   eval.parquet, eval_probs.npy                           predict@<id>
    metrics/models/<id>.json                                                             predict@<id>
    artifacts/similarity.parquet, artifacts/feature_mixes.parquet, artifacts/pair_cache/similarity/   similarity
    artifacts/pairs.parquet, artifacts/pairs_per_class.parquet, artifacts/pair_cache/ensemble/,
    metrics/study.json                                                                   ensemble
    artifacts/mistakes/<table>.parquet, adversarial_images.npy, metrics/mistakes.json,
    artifacts/pair_cache/mistakes/                                                       mistakes
    artifacts/shifted/<id>/       <set>.npy (probabilities on a shifted set), shifted.json  shifted@<id>
    artifacts/shift.parquet, artifacts/shift_pairs.parquet, artifacts/shift_examples.npy,
    artifacts/shift_samples.parquet, metrics/shift.json                                  shift
    artifacts/compression.parquet, metrics/compression.json                              compression
    reports/index.html                                                                   report

Pairwise numbers are only meaningful when both models saw the same samples in the same order, so
:func:`read_predictions` checks every model's predictions against the first one's sample ids and
labels once, before any pair is computed.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from zooscope.data.datasets import SPLITS
from zooscope.io import read_json

__all__ = [
    "PARAMS", "EMBEDDINGS", "MODEL_METRICS", "PAIRS", "STUDY_METRICS", "CATEGORY_METRICS", "REPORT", "DIFF_REPORT",
    "PREDICTIONS_DIR", "WEIGHTS", "CARD", "PROBE_SUMMARY", "PROBE_WEIGHTS", "PREDICTIONS", "PROBS", "CALIBRATION_PREDICTIONS",
    "CALIBRATION_PROBS", "prediction_files", "MISTAKES_TABLES", "ATTACK_TABLES", "ADVERSARIAL_IMAGES",
    "embedding_file", "logits_file", "model_metrics_file", "mistakes_file",
    "link_input", "link_inputs", "read_card", "read_cards", "load_embeddings", "read_probe_summary", "read_model_metrics", "read_mistakes",
    "Predictions", "read_predictions", "read_top5", "unordered_pairs", "pair_matrix",
    "SHIFTED_SUMMARY", "shifted_file",
]

# ------------------------------------------------------------------ default locations (those of dvc.yaml)

PARAMS = "params.yaml"
EMBEDDINGS = "artifacts/embeddings"
PREDICTIONS_DIR = "artifacts/predictions"
MODEL_METRICS = "metrics/models"
PAIRS = "artifacts/pairs.parquet"  # the ensemble stage's per-pair table
STUDY_METRICS = "metrics/study.json"  # the ensemble stage's results in full (git-tracked, not a DVC metric)
CATEGORY_METRICS = "metrics/categories"  # the ensemble stage's DVC metrics: <category>.json, flat
REPORT = "reports/index.html"
DIFF_REPORT = "reports/diff.html"

# ------------------------------------------------------------------ file names inside a stage's folder

WEIGHTS = "weights.safetensors"  # fetch: the network's state dict
CARD = "card.json"  # fetch: source, sha256, tags, size, preprocessing, how to rebuild the network
PROBE_SUMMARY = "probe.json"  # probe: probe and k-NN accuracy, the chosen L2
PROBE_WEIGHTS = "probe.safetensors"  # probe: mean, scale, weight, bias
PREDICTIONS = "eval.parquet"  # predict: sample_id, label, pred, correct, true_prob, top5
PROBS = "eval_probs.npy"  # predict: float32 [n, C], temperature-scaled
#: predict: the same two for the calibration split, on which ensembles and partners are chosen.
CALIBRATION_PREDICTIONS, CALIBRATION_PROBS = "calibration.parquet", "calibration_probs.npy"
_PREDICTION_FILES = {"eval": (PREDICTIONS, PROBS), "calibration": (CALIBRATION_PREDICTIONS, CALIBRATION_PROBS)}
#: The mistakes stage's tables, one ``<name>.parquet`` each.
MISTAKES_TABLES = ("taxonomy", "confusions", "consensus", "neighbours", "prototypes", "prototype_overlap",
                   "robustness", "transfer", "adversarial")
#: Those of them the attacks give (with ``adversarial_images.npy``): absent when ``mistakes.attacks`` is false.
ATTACK_TABLES = ("robustness", "transfer", "adversarial")
ADVERSARIAL_IMAGES = "adversarial_images.npy"  # mistakes: float32 [rows, C, H, W] of adversarial.parquet


def embedding_file(folder: str | Path, split: str) -> Path:
    """An embed folder's float32 [n_split, d] embeddings of one split."""
    return Path(folder) / f"{split}.npy"


def logits_file(folder: str | Path, split: str) -> Path:
    """float32 [n_split, C] logits of one split: the head's (embed folder) or the probe's (probe folder)."""
    return Path(folder) / f"{split}_logits.npy"


def prediction_files(folder: str | Path, split: str = "eval") -> tuple[Path, Path]:
    """A predict folder's (predictions table, temperature-scaled probabilities) of ``split`` (eval or calibration)."""
    table, probs = _PREDICTION_FILES[split]
    return Path(folder) / table, Path(folder) / probs


def model_metrics_file(metrics_dir: str | Path, model: str) -> Path:
    """One model's metrics (top1, top5, nll, ece, temperature, probe_acc, knn_acc), a DVC metric."""
    return Path(metrics_dir) / f"{model}.json"


SHIFTED_SUMMARY = "shifted.json"  # shifted@<id>: per set top1, nll, ece and the temperature used


def shifted_file(folder: str | Path, name: str) -> Path:
    """A shifted folder's float32 [n, C] probabilities on the shifted set ``name`` (``<corruption>-<severity>``, or a
    folder's name in ``shift.folders``)."""
    return Path(folder) / f"{name}.npy"


def mistakes_file(folder: str | Path, table: str) -> Path:
    """One of the mistakes stage's tables (:data:`MISTAKES_TABLES`)."""
    return Path(folder) / f"{table}.parquet"


def link_input(folder: str | Path, name: str, target: str | Path | None) -> None:
    """Write ``<folder>/<name>``: a symbolic link to the local file or folder an input is read from (so a stage
    that lists it as a DVC dependency re-runs when that file's contents change: DVC hashes through the link), or,
    for an input read from no local file, a one-line note. Replaced atomically. The link keeps the path as given
    (made absolute, not resolved), so a ``latest`` link that is later repointed is followed to its new target.

    Raises:
        FileNotFoundError: the input's file does not exist (naming the input and the path).
    """
    import os

    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    if target is None:
        tmp.write_text("read from no local file\n")
    else:
        real = Path(target).expanduser().absolute()
        if not real.exists():
            raise FileNotFoundError(f"{name}: {target}: not found")
        tmp.symlink_to(real)
    os.replace(tmp, path)


def link_inputs(folder: str | Path, inputs: Mapping[str, str | Path | None]) -> None:
    """:func:`link_input` for every input, and remove what ``folder`` holds for inputs no longer listed."""
    for stale in (p for p in Path(folder).rglob("*") if p.is_symlink() or p.is_file()):
        if str(stale.relative_to(folder)) not in inputs:
            stale.unlink()  # an input the study no longer reads
    for name, target in inputs.items():
        link_input(folder, name, target)


# ------------------------------------------------------------------ readers


def read_card(model_dir: str | Path) -> dict[str, Any]:
    """A model folder's ``card.json``."""
    return read_json(Path(model_dir) / CARD)


def read_cards(models_dir: str | Path, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``card.json`` of each model under ``models_dir/<id>/``."""
    return {mid: read_card(Path(models_dir) / mid) for mid in ids}


def load_embeddings(folder: str | Path, splits: Sequence[str] = SPLITS, *,
                    rows: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """split -> an embed folder's embeddings, memory-mapped float32 [n_split, d].

    Args:
        rows: split -> the samples it must hold (the dataset's split sizes); None: not checked.

    Raises:
        FileNotFoundError: a split's file is missing; ValueError: it holds another number of rows (both name
            the file and the stage to re-run).
    """
    out = {}
    for split in splits:
        path = embedding_file(folder, split)
        if not path.exists():
            raise FileNotFoundError(f"{path}: embeddings not found; run the embed stage first")
        out[split] = np.load(path, mmap_mode="r")
        if rows is not None and len(out[split]) != rows[split]:
            raise ValueError(f"{path}: {len(out[split])} rows but the {split} split has {rows[split]} samples; "
                             "re-run the embed stage")
    return out


def read_probe_summary(probe_dir: str | Path) -> dict[str, Any]:
    """A probe folder's ``probe.json``."""
    return read_json(Path(probe_dir) / PROBE_SUMMARY)


def read_model_metrics(metrics_dir: str | Path, model: str) -> dict[str, Any] | None:
    """One model's metrics, or None before its predict stage has run."""
    path = model_metrics_file(metrics_dir, model)
    return read_json(path) if path.exists() else None


def read_mistakes(folder: str | Path, tables: Sequence[str] = MISTAKES_TABLES) -> dict[str, pl.DataFrame]:
    """name -> the mistakes stage's table, for the named ``tables``."""
    out = {}
    for name in tables:
        path = mistakes_file(folder, name)
        if not path.exists():
            raise FileNotFoundError(f"{path}: not found; run the mistakes stage (dvc repro mistakes) first")
        out[name] = pl.read_parquet(path)
    return out


# ------------------------------------------------------------------ aligned views for the pairwise stages


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

    def select(self, ids: Sequence[str]) -> Predictions:
        """The predictions of ``ids`` (models of this set), in that order."""
        rows = [self.models.index(mid) for mid in ids]
        return replace(self, models=tuple(ids), pred=self.pred[rows], probs=tuple(self.probs[r] for r in rows))

    def class_accuracy(self, *, num_classes: int) -> np.ndarray:
        """float [n_models, num_classes]: each model's accuracy on the samples of each class (nan: no sample)."""
        support = np.bincount(self.labels, minlength=num_classes)
        right = np.stack([np.bincount(self.labels, weights=c, minlength=num_classes) for c in self.correct])
        with np.errstate(invalid="ignore", divide="ignore"):
            return right / support


def read_predictions(predictions_dir: str | Path, ids: Sequence[str], *, split: str = "eval") -> Predictions:
    """Read ``<predictions_dir>/<id>/eval.parquet`` (``calibration.parquet`` for that split) of each model and check
    they are aligned.

    Raises:
        ValueError: a model's sample ids or labels differ from the first model's (naming the model).
    """
    root = Path(predictions_dir)
    frames = {}
    files = {mid: prediction_files(root / mid, split) for mid in ids}
    for mid in ids:
        path = files[mid][0]
        if not path.exists():
            raise FileNotFoundError(f"{path}: predictions not found; run predict@{mid} first")
        frames[mid] = pl.read_parquet(path, columns=["sample_id", "label", "pred"])
    first = frames[ids[0]]
    for mid, frame in frames.items():
        if not (frame["sample_id"].equals(first["sample_id"]) and frame["label"].equals(first["label"])):
            raise ValueError(f"{files[mid][0]}: sample ids or labels differ from {ids[0]}'s; "
                             "every model must predict the same eval samples in the same order (re-run predict)")
    return Predictions(
        models=tuple(ids),
        sample_ids=first["sample_id"].to_numpy().astype(np.int64),
        labels=first["label"].to_numpy().astype(np.int64),
        pred=np.stack([frames[mid]["pred"].to_numpy() for mid in ids]).astype(np.int64),
        probs=tuple(files[mid][1] for mid in ids),
    )


def read_top5(predictions_dir: str | Path, ids: Sequence[str]) -> np.ndarray:
    """Each model's eval top-5 classes (``eval.parquet``'s ``top5``, best first): int32 [n_models, n, k], k = 5 or
    the number of classes when fewer. Check the alignment with :func:`read_predictions` first."""
    tops = []
    for mid in ids:
        column = pl.read_parquet(prediction_files(Path(predictions_dir) / mid)[0], columns=["top5"])["top5"]
        tops.append(column.list.to_array(column.list.len().max()).to_numpy().astype(np.int32))
    return np.stack(tops)


def unordered_pairs(ids: Sequence[str]) -> list[tuple[str, str]]:
    """Every unordered pair (a, b), a before b in ``ids``' order: the rows of the pairwise tables."""
    if len(ids) < 2:
        raise ValueError(f"pairwise analysis needs at least two models; the study has {len(ids)}")
    return list(itertools.combinations(ids, 2))


def pair_matrix(frame: pl.DataFrame, order: Sequence[str], column: str, *, diagonal: float = np.nan,
                rows: str = "model_a", cols: str = "model_b", symmetric: bool = True) -> np.ndarray:
    """A per-pair ``column`` of a pair table as a float64 [M, M] matrix in ``order``.

    Args:
        frame: one row per pair with the ``rows`` and ``cols`` model columns and ``column``.
        order: the models of the matrix; pairs with another model are left out.
        diagonal: the value of [i, i] unless the table gives one; nan where a pair has no (or a null) value.
        symmetric: fill [j, i] too (an unordered pair table); False for ordered tables (source -> target).
    """
    index = {m: i for i, m in enumerate(order)}
    out = np.full((len(order), len(order)), np.nan)
    np.fill_diagonal(out, diagonal)
    for a, b, v in frame.select(rows, cols, column).rows():
        if a in index and b in index and v is not None:
            out[index[a], index[b]] = v
            if symmetric:
                out[index[b], index[a]] = v
    return out
