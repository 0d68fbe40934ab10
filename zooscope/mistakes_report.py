"""The data of the report's mistakes sections, read from the mistakes stage's outputs (``artifacts/mistakes``).

Each function returns plain arrays, ids and dicts, no HTML: sample ids index the study's dataset
(``Dataset.sample_ids``), so the report draws thumbnails from the dataset's images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["consensus_section", "criticism_section", "transfer_section", "adversarial_section"]


def _read(mistakes_dir: str | Path, name: str) -> pl.DataFrame:
    path = Path(mistakes_dir) / f"{name}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run the mistakes stage (dvc repro mistakes) first")
    return pl.read_parquet(path)


def consensus_section(mistakes_dir: str | Path, models: list[str], *, top: int = 24) -> list[dict]:
    """The ``top`` consensus errors, best first, with the zoo's votes and their explanation by example.

    Args:
        models: the study's model ids in study order (the order of each row's votes).

    Returns:
        rows ``{rank, sample_id, label, consensus_pred, share, confidence, votes: {model: predicted class},
        neighbour_ids, neighbour_labels, neighbour_sim}`` (neighbours: nearest training samples in the strongest
        model's embedding; empty beyond the stage's ``show``).
    """
    rows = _read(mistakes_dir, "consensus").head(top).to_dicts()
    for r in rows:
        if len(r["votes"]) != len(models):
            raise ValueError(f"consensus votes hold {len(r['votes'])} models but {len(models)} ids were given")
        r["votes"] = dict(zip(models, r["votes"]))
    return rows


def criticism_section(mistakes_dir: str | Path, *, models: list[str] | None = None) -> dict[str, dict[int, dict]]:
    """MMD-critic picks: ``{model: {class: {"prototypes": [sample ids], "criticisms": [sample ids],
    "witness": [criticisms' witness values]}}}``, in pick order; ``models`` limits and orders the models."""
    frame = _read(mistakes_dir, "prototypes")
    ids = models if models is not None else list(dict.fromkeys(frame["model"].to_list()))
    out: dict[str, dict[int, dict]] = {}
    for mid in ids:
        sub = frame.filter(pl.col("model") == mid).sort("class", "kind", "rank")
        out[mid] = {}
        for c in sorted(set(sub["class"].to_list())):
            cls = sub.filter(pl.col("class") == c)
            crit = cls.filter(pl.col("kind") == "criticism")
            out[mid][c] = {"prototypes": cls.filter(pl.col("kind") == "prototype")["sample_id"].to_list(),
                           "criticisms": crit["sample_id"].to_list(), "witness": crit["witness"].to_list()}
    return out


def transfer_section(mistakes_dir: str | Path, metrics_path: str | Path | None = None) -> dict:
    """The adversarial transfer heatmap and the error-consistency heatmap side by side.

    Returns:
        ``{models, transfer: float [M, M] (accuracy of target column on examples crafted on source row;
        the diagonal is each model's own robust accuracy), kappa: float [M, M] (nan diagonal), attack, eps,
        correlation: {pearson, spearman, n} of transfer rate with kappa (from ``metrics_path``, the stage's
        metrics file, when given)}``.
    """
    frame = _read(mistakes_dir, "transfer")
    models = list(dict.fromkeys(frame["source"].to_list()))
    index = {m: i for i, m in enumerate(models)}
    transfer = np.full((len(models), len(models)), np.nan)
    kappa = np.full_like(transfer, np.nan)
    for s, t, acc, k in frame.select("source", "target", "accuracy", "kappa").iter_rows():
        transfer[index[s], index[t]], kappa[index[s], index[t]] = acc, k
    out = {"models": models, "transfer": transfer, "kappa": kappa, "attack": frame["attack"][0], "eps": frame["eps"][0]}
    if metrics_path is not None:
        from .io import read_json

        out["correlation"] = read_json(metrics_path)["transfer_kappa"]
    return out


def adversarial_section(mistakes_dir: str | Path) -> tuple[list[dict], np.ndarray]:
    """Adversarial examples crafted on the strongest model (the ones that fool it), with explanations.

    Returns:
        (rows ``{source, sample_id, label, eps, clean_pred, adv_pred, votes (every model's prediction on the
        example, study order), clean_neighbour_ids, clean_neighbour_labels, adv_neighbour_ids,
        adv_neighbour_labels}``, images float32 [rows, C, H, W] in [0, 1], row order).
    """
    rows = _read(mistakes_dir, "adversarial").to_dicts()
    images = np.load(Path(mistakes_dir) / "adversarial_images.npy")
    if len(images) != len(rows):
        raise ValueError(f"{mistakes_dir}: {len(images)} adversarial images for {len(rows)} rows; re-run the stage")
    return rows, images
