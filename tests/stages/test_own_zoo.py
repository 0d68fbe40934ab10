"""The README's worked example, run: studies/own-zoo.yaml on an image folder of three classes, with three timm
checkpoints saved as safetensors under ~ (randomly initialised here: nothing can be downloaded), through a real
`dvc repro` of the whole pipeline."""

from __future__ import annotations

import json
import os

import polars as pl
import pytest
import yaml

from tests.conftest import REPO, write_study
from tests.datafiles import write_image_folder
from tests.dvcrepo import dvc, make_repo

pytestmark = pytest.mark.slow


def test_the_own_zoo_example_runs_end_to_end(tmp_path, monkeypatch):
    import timm
    from safetensors.torch import save_file

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))  # the example's ~/my-images and ~/checkpoints/...
    study = yaml.safe_load((REPO / "studies/own-zoo.yaml").read_text())
    write_image_folder(home / "my-images", {"cat": 20, "dog": 20, "eel": 20}, size=(40, 32))
    for mid, spec in study["models"].items():
        net = timm.create_model(spec["arch"], pretrained=False, num_classes=spec["num_classes"])
        path = home / spec["source"].removeprefix("file:~/")
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    study["mistakes"] |= {"attack_subset": 6, "eps": [0.03], "pgd_steps": 2}  # the CPU budget of a test
    repo = make_repo(tmp_path / "repo", {})
    write_study(repo / "params.yaml", study)
    out = dvc(repo, "repro")
    assert "Traceback" not in out.stdout + out.stderr
    pairs = pl.read_parquet(repo / "artifacts/pairs.parquet")
    assert dict(zip(zip(pairs["model_a"], pairs["model_b"]), pairs["category"])) == {
        ("r10_a", "r10_b"): "reinit", ("r10_a", "r14"): "architecture", ("r10_b", "r14"): "architecture"}
    for mid in study["models"]:
        card = json.loads((repo / f"artifacts/models/{mid}/card.json").read_text())
        assert card["preprocess"]["kind"] == "timm" and card["has_head"]  # the model's own 224 px pipeline, its head
        assert os.path.islink(repo / f"artifacts/inputs/models/{mid}")  # each checkpoint is a dependency
    assert (repo / "reports/index.html").stat().st_size > 0
    assert json.loads((repo / "metrics/categories/reinit.json").read_text())["pairs"] == 1
