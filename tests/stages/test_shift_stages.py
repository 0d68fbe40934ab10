"""The zoo off the test set (shifted@<model>, shift) under a real `dvc repro` of the tiny digits study: every
number recounted from the stage's own files or recomputed another way, and adding a set re-runs only what needs it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
import yaml
from scipy.stats import norm
from sklearn.metrics import cohen_kappa_score

from tests.conftest import TINY_STUDY, write_study
from tests.dvcrepo import dvc, ran_stages

pytestmark = pytest.mark.slow

SETS = ["gaussian_noise-3", "rotate-2"]


def _dataset():
    from zooscope.config import DatasetSpec
    from zooscope.data.datasets import load_dataset

    return load_dataset(DatasetSpec(**TINY_STUDY["dataset"]))


def _only_the_new_set_ran(out: str) -> None:
    """After one set was added: only the stages that read the sets re-ran, and each model computed that set only."""
    models = list(TINY_STUDY["models"])
    assert sorted(ran_stages(out)) == sorted(["inputs", *(f"shifted@{m}" for m in models), "shift", "compression",
                                              "report"])
    assert out.count("3 sets (1 computed, the rest cached)") == len(models)


def test_shift_tables_recount_from_the_shifted_probabilities(studied):
    repo, out = studied
    assert {f"shifted@{m}" for m in TINY_STUDY["models"]} | {"shift"} <= set(ran_stages(out))
    metrics = json.loads((repo / "metrics/shift.json").read_text())
    assert metrics["sets"] == SETS and metrics["samples"] == 120
    samples = pl.read_parquet(repo / "artifacts/shift_samples.parquet")
    data = _dataset()
    eval_ids = set(data.sample_ids[data.split("eval")].tolist())
    assert len(samples) == 120 and set(samples["sample_id"].to_list()) <= eval_ids
    labels = samples["label"].to_numpy()
    at = {int(s): i for i, s in enumerate(data.sample_ids)}
    assert np.array_equal(labels, data.labels[[at[int(s)] for s in samples["sample_id"]]])

    table = pl.read_parquet(repo / "artifacts/shift.parquet")
    ids = list(TINY_STUDY["models"])
    acc = {}
    for mid in ids:
        clean = pl.read_parquet(repo / f"artifacts/predictions/{mid}/eval.parquet")
        right = dict(zip(clean["sample_id"].to_list(), clean["correct"].to_list()))
        acc[mid, "clean"] = np.mean([right[int(s)] for s in samples["sample_id"]])
        for name in SETS:
            probs = np.load(repo / f"artifacts/shifted/{mid}/{name}.npy")
            assert probs.shape == (120, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
            acc[mid, name] = np.mean(probs.argmax(1) == labels)
    for row in table.iter_rows(named=True):
        assert row["top1"] == pytest.approx(acc[row["model"], row["set"]])

    # effective robustness against a hand fit of the mean corrupted accuracy on the clean one, in probit space
    clean = np.array([acc[m, "clean"] for m in ids])
    shifted = np.array([np.mean([acc[m, s] for s in SETS]) for m in ids])
    x, y = norm.ppf(np.clip(clean, 1 / 240, 1 - 1 / 240)), norm.ppf(np.clip(shifted, 1 / 240, 1 - 1 / 240))
    slope, intercept = np.polyfit(x, y, 1)
    for m, expected in zip(ids, shifted - norm.cdf(intercept + slope * x)):
        assert metrics["models"][m]["effective_robustness"] == pytest.approx(expected, abs=1e-9)
    # mCE of the base is 1 by definition; another model's against a count
    assert metrics["models"]["cnn_a"]["mce"] == pytest.approx(1.0)
    ce = [(1 - acc["mlp", s]) / (1 - acc["cnn_a", s]) for s in SETS]  # one severity per corruption here
    assert metrics["models"]["mlp"]["mce"] == pytest.approx(np.mean(ce))

    # kappa of a pair on a set: Cohen's kappa of the two models' correctness (scikit-learn)
    pairs = pl.read_parquet(repo / "artifacts/shift_pairs.parquet")
    row = pairs.filter(model_a="cnn_a", model_b="mlp", set="rotate-2").row(0, named=True)
    right = {m: np.load(repo / f"artifacts/shifted/{m}/rotate-2.npy").argmax(1) == labels for m in ("cnn_a", "mlp")}
    assert row["kappa"] == pytest.approx(cohen_kappa_score(right["cnn_a"], right["mlp"]))
    ens = (np.load(repo / "artifacts/shifted/cnn_a/rotate-2.npy") + np.load(repo / "artifacts/shifted/mlp/rotate-2.npy"))
    assert row["gain"] == pytest.approx(np.mean(ens.argmax(1) == labels) - max(right["cnn_a"].mean(), right["mlp"].mean()))


def test_the_examples_are_the_library_corruption_of_the_same_images_with_the_same_seed(studied):
    from zooscope.shift import corrupt

    repo, _ = studied
    examples = np.load(repo / "artifacts/shift_examples.npy")
    samples = pl.read_parquet(repo / "artifacts/shift_samples.parquet")["sample_id"].to_numpy()
    data = _dataset()
    at = {int(s): i for i, s in enumerate(data.sample_ids)}
    images = data.images[[at[int(s)] for s in samples]]
    k = examples.shape[1]
    assert np.array_equal(examples[0], images[:k])
    for j, (name, severity) in enumerate([("gaussian_noise", 3), ("rotate", 2)], start=1):
        assert np.array_equal(examples[j], corrupt(images, name=name, severity=severity, seed=0)[:k])


def test_adding_a_set_reruns_the_shift_stages_only_and_computes_that_set_only(studied, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(studied[0], work, symlinks=True)
    study = yaml.safe_load((work / "params.yaml").read_text())
    study["shift"]["corruptions"]["contrast"] = [4]
    write_study(work / "params.yaml", study)
    out = dvc(work, "repro").stdout
    _only_the_new_set_ran(out)
    assert json.loads((work / "metrics/shift.json").read_text())["sets"] == [*SETS, "contrast-4"]


def test_a_shifted_folder_is_fed_through_every_model_and_set_against_the_eval_split(studied, tmp_path):
    """An image folder of the dataset's classes (here the first 60 eval digits mirrored, as PNGs under class folders
    named by index) is a shifted set: each model's top-1 on it recounted from its files, its effective robustness
    against a hand fit on the eval split's top-1, and only what reads it re-runs."""
    from PIL import Image

    work = tmp_path / "work"
    shutil.copytree(studied[0], work, symlinks=True)
    data = _dataset()
    pos = data.split("eval")[:60]
    folder = tmp_path / "mirrored"
    for i, p in enumerate(pos):
        (folder / str(data.labels[p])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(data.images[p][:, ::-1].copy()).save(folder / str(data.labels[p]) / f"{i:03d}.png")
    study = yaml.safe_load((work / "params.yaml").read_text())
    study["shift"]["folders"] = {"mirrored": str(folder)}
    write_study(work / "params.yaml", study)
    out = dvc(work, "repro").stdout
    _only_the_new_set_ran(out)
    models = list(TINY_STUDY["models"])

    metrics = json.loads((work / "metrics/shift.json").read_text())
    assert metrics["folder_sets"] == ["mirrored"] and metrics["folders"]["mirrored"]["images"] == 60
    assert metrics["corrupted_sets"] == SETS  # the mean and mCE stay the corrupted sets'
    # the folder's labels are its class folders' (sorted by folder name, then file name)
    labels = np.concatenate([[c] * len(list((folder / str(c)).glob("*.png"))) for c in sorted(
        {int(p.name) for p in folder.iterdir()}, key=str)])
    eval_top1, top1 = {}, {}
    for mid in models:
        clean = pl.read_parquet(work / f"artifacts/predictions/{mid}/eval.parquet")
        eval_top1[mid] = clean["correct"].mean()
        top1[mid] = np.mean(np.load(work / f"artifacts/shifted/{mid}/mirrored.npy").argmax(1) == labels)
        assert metrics["models"][mid]["folders"]["mirrored"]["top1"] == pytest.approx(top1[mid])
    x = norm.ppf(np.clip([eval_top1[m] for m in models], 1 / 120, 1 - 1 / 120))
    y = norm.ppf(np.clip([top1[m] for m in models], 1 / 120, 1 - 1 / 120))
    slope, intercept = np.polyfit(x, y, 1)
    for m, expected in zip(models, np.array([top1[m] for m in models]) - norm.cdf(intercept + slope * x)):
        assert metrics["models"][m]["folders"]["mirrored"]["effective_robustness"] == pytest.approx(expected, abs=1e-9)
    assert "kappa on mirrored" in (work / "reports/index.html").read_text()
