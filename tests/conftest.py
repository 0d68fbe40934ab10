"""Shared fixtures: a tiny digits study, written as params.yaml files or as objects."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("OMP_NUM_THREADS", "2")

_TAGS = {"seed": 0, "hyperparameters": "adamw", "architecture": "cnn-w4", "framework": "supervised", "data": "digits-train"}
_CNN = {"kind": "cnn", "widths": [4, 8], "hidden": 16}

TINY_STUDY = {
    "dataset": {"source": "digits", "seed": 0, "calibration_size": 0.15, "eval_size": 0.3},
    "base": "cnn_a",
    "threads": 1,
    "embed": {"batch_size": 256},
    "probe": {"l2_grid": [0.01, 0.001], "max_iter": 50, "knn_k": 5},
    "predict": {"ece_bins": 15},
    "similarity": {"knn_k": 5, "n_perm": 20, "seed": 0, "concat_all_up_to": 16, "mix_fractions": [0.0, 0.5, 1.0],
                   "mix_dim": None},
    "ensemble": {"n_boot": 1000, "seed": 0, "matched_band": 0.2, "greedy_max_size": 4, "strongest": 2,
                 "class_groups": {"low": [0, 1, 2, 3, 4], "high": [5, 6, 7, 8, 9]}},
    "report": {"thumbnails": 12, "compare_to": "HEAD"},
    # two small shifted sets of 120 eval images (docs/science.md section 8)
    "shift": {"corruptions": {"gaussian_noise": [3], "rotate": [2]}, "eval_size": 120, "seed": 0},
    "mistakes": {"consensus_share": 0.75, "neighbour_k": 5, "top_confusions": 3, "explain_k": 4, "show": 5,
                 "prototypes": 3, "criticisms": 2, "gamma": None, "max_candidates": 2000, "attack_subset": 40,
                 "eps": [0.03, 0.1], "pgd_steps": 3, "transfer_attack": "pgd", "transfer_eps": 0.1, "seed": 0},
    "models": {
        "cnn_a": {"source": "recipe:supervised", "tags": dict(_TAGS), "arch": dict(_CNN),
                  "train": {"epochs": 2, "batch_size": 64, "lr": 0.01}},
        "cnn_b": {"source": "recipe:supervised", "tags": {**_TAGS, "seed": 1}, "arch": dict(_CNN),
                  "train": {"epochs": 2, "batch_size": 64, "lr": 0.01}},
        "mlp": {"source": "recipe:supervised", "tags": {**_TAGS, "architecture": "mlp-32"},
                "arch": {"kind": "mlp", "hidden": [32]}, "train": {"epochs": 2, "batch_size": 64, "lr": 0.01}},
        "randfeat": {"source": "recipe:random_features", "tags": {**_TAGS, "framework": "random-features"},
                     "arch": dict(_CNN), "weak": True},
    },
}


#: ``grown``'s added model: distilled from cnn_a, a tenth of class 3's training samples kept.
KD_A = {"source": "recipe:distill", "tags": {**_TAGS, "seed": 2, "framework": "distillation-from-cnn_a"},
        "arch": dict(_CNN), "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "temperature": 4.0, "alpha": 0.9,
                                      "imbalance": {"label": 3, "keep": 0.1, "seed": 0},
                                      "teacher": copy.deepcopy(TINY_STUDY["models"]["cnn_a"])}}


@pytest.fixture
def tiny_study_dict() -> dict:
    """A fresh, mutable copy of the tiny digits study."""
    return copy.deepcopy(TINY_STUDY)


@pytest.fixture
def tiny_study(tiny_study_dict):
    from zooscope.config import parse_study

    return parse_study(tiny_study_dict)


@pytest.fixture(scope="session")
def digits():
    from zooscope.config import DatasetSpec
    from zooscope.data.datasets import load_dataset

    return load_dataset(DatasetSpec(**TINY_STUDY["dataset"]))


@pytest.fixture(scope="session")
def studied(tmp_path_factory) -> tuple[Path, str]:
    """The tiny study after one real `dvc repro`, committed: (repository, the repro's output).

    Shared by every end-to-end test module; a test that changes the study works on a copy.
    """
    from tests.dvcrepo import _run, dvc, make_repo

    repo = make_repo(tmp_path_factory.mktemp("study"), TINY_STUDY)
    out = dvc(repo, "repro").stdout
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", "study"], repo)
    return repo, out


@pytest.fixture(scope="session")
def grown(studied, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the studied repository with one model added and `dvc repro` run again, not committed: (repository,
    that repro's output). Tests that change it copy it. The model, ``kd_a``, is distilled from ``cnn_a`` (its inline
    teacher is cnn_a's spec) on a class-imbalanced training set (a tenth of class 3's samples kept), so the
    subgroups' student-against-teacher rows exist."""
    import shutil

    from tests.dvcrepo import dvc

    repo = tmp_path_factory.mktemp("grown") / "repo"
    shutil.copytree(studied[0], repo, symlinks=True)
    study = yaml.safe_load((repo / "params.yaml").read_text())
    study["models"]["kd_a"] = KD_A
    write_study(repo / "params.yaml", study)
    return repo, dvc(repo, "repro").stdout


def write_study(path: Path, study: dict) -> Path:
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path
