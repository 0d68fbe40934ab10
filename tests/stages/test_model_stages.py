"""The stage CLIs under a real `dvc repro`, on a tiny digits study in a temporary git + DVC repository."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from tests.conftest import REPO, TINY_STUDY, write_study
from tests.dvcrepo import _run, dvc, make_repo, ran_stages

pytestmark = pytest.mark.slow


def test_repro_runs_every_stage_of_every_model(studied):
    repo, out = studied
    expected = {f"{s}@{m}" for s in ("fetch", "embed", "probe", "predict", "shifted") for m in TINY_STUDY["models"]}
    assert set(ran_stages(out)) == expected | {"inputs", "similarity", "ensemble", "mistakes", "shift", "compression",
                                               "report"}
    for mid in TINY_STUDY["models"]:
        card = json.loads((repo / f"artifacts/models/{mid}/card.json").read_text())
        assert card["id"] == mid and len(card["sha256"]) == 64
        metrics = json.loads((repo / f"metrics/models/{mid}.json").read_text())
        assert set(metrics) >= {"top1", "top5", "nll", "ece", "temperature", "probe_acc", "knn_acc"}
    shown = json.loads(dvc(repo, "metrics", "show", "--json").stdout)
    text = json.dumps(shown)
    assert all(f"metrics/models/{mid}.json" in text for mid in TINY_STUDY["models"])


def test_embeddings_match_a_direct_forward_pass(studied, digits):
    from zooscope.data.transforms import native_tensor
    from zooscope.zoo.sources import load_network

    repo, _ = studied
    card = json.loads((repo / "artifacts/models/cnn_a/card.json").read_text())
    model = load_network(card["builder"], str(repo / "artifacts/models/cnn_a/weights.safetensors"))
    pos = digits.split("eval")
    with torch.inference_mode():
        x = native_tensor(digits.images[pos], card["preprocess"])
        f = model.forward_features(x)
        emb, logits = model.forward_head(f, pre_logits=True), model(x)
    np.testing.assert_allclose(np.load(repo / "artifacts/embeddings/cnn_a/eval.npy"), emb.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.load(repo / "artifacts/embeddings/cnn_a/eval_logits.npy"), logits.numpy(), rtol=1e-5, atol=1e-5)


def test_predictions_table_is_consistent(studied, digits):
    repo, _ = studied
    for mid in ("cnn_a", "randfeat"):
        frame = pl.read_parquet(repo / f"artifacts/predictions/{mid}/eval.parquet")
        probs = np.load(repo / f"artifacts/predictions/{mid}/eval_probs.npy")
        pos = digits.split("eval")
        assert frame.columns == ["sample_id", "label", "pred", "correct", "true_prob", "top5"]
        assert frame["sample_id"].to_list() == digits.sample_ids[pos].tolist()
        assert frame["label"].to_list() == digits.labels[pos].tolist()
        np.testing.assert_array_equal(frame["pred"].to_numpy(), probs.argmax(1))
        np.testing.assert_array_equal(frame["correct"].to_numpy(), frame["pred"].to_numpy() == frame["label"].to_numpy())
        np.testing.assert_allclose(frame["true_prob"].to_numpy(), probs[np.arange(len(pos)), digits.labels[pos]], rtol=1e-6)
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
        metrics = json.loads((repo / f"metrics/models/{mid}.json").read_text())
        assert metrics["top1"] == pytest.approx(frame["correct"].mean())
    # the headless random-feature model predicts through its probe
    assert not json.loads((repo / "artifacts/models/randfeat/card.json").read_text())["has_head"]
    assert not (repo / "artifacts/embeddings/randfeat/eval_logits.npy").exists()


def test_nothing_changed_runs_nothing_and_one_model_change_reruns_only_that_model(studied, tmp_path):
    repo, _ = studied
    assert ran_stages(dvc(repo, "repro").stdout) == []
    work = tmp_path / "changed"
    shutil.copytree(repo, work, symlinks=True)
    study = yaml.safe_load((work / "params.yaml").read_text())
    study["models"]["cnn_b"]["tags"]["seed"] = 7
    write_study(work / "params.yaml", study)
    out = dvc(work, "repro").stdout
    assert sorted(ran_stages(out)) == sorted([*(f"{s}@cnn_b" for s in ("fetch", "embed", "probe", "predict", "shifted")),
                                              "inputs", "similarity", "ensemble", "mistakes", "shift", "compression",
                                              "report"])
    pairs_with_cnn_b = len(TINY_STUDY["models"]) - 1
    assert f"similarity: 6 pairs, {pairs_with_cnn_b} computed" in out and f"ensemble: 6 pairs, {pairs_with_cnn_b} computed" in out


def test_a_bad_model_fails_its_stage_with_a_clear_message(tmp_path):
    study = json.loads(json.dumps(TINY_STUDY))
    study["models"] = {"cnn_a": study["models"]["cnn_a"],
                       "broken": {**study["models"]["cnn_a"], "source": f"file:{tmp_path}/missing.safetensors"}}
    repo = make_repo(tmp_path / "repo", study)
    proc = dvc(repo, "repro", "fetch@broken", check=False)
    assert proc.returncode != 0
    assert "missing.safetensors: checkpoint not found" in proc.stdout + proc.stderr
    # the checkpoint arrives: the stage runs, links it, and from then on DVC tracks its contents
    dvc(repo, "repro", "fetch@cnn_a")
    shutil.copy(repo / "artifacts/models/cnn_a/weights.safetensors", tmp_path / "missing.safetensors")
    out = dvc(repo, "repro", "fetch@broken").stdout
    assert "fetch@broken" in ran_stages(out) and (repo / "artifacts/inputs/models/broken").is_symlink()
    dvc(repo, "repro", "fetch@broken")  # the inputs stage re-hashes the new link once
    assert "fetch@broken" not in dvc(repo, "status").stdout
    (tmp_path / "missing.safetensors").write_bytes(b"not weights any more")
    assert "fetch@broken" in dvc(repo, "status").stdout


def test_fetch_is_byte_reproducible_across_processes(tmp_path):
    """Same params, two processes: identical weight and card files (so DVC hashes repeat too)."""
    params = write_study(tmp_path / "params.yaml", TINY_STUDY)
    digests = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        _run([sys.executable, "-m", "stages.fetch", "--params", str(params), "--model", "cnn_a", "--models", str(out),
              "--no-progress"], REPO)
        digests.append([hashlib.sha256((out / "cnn_a" / f).read_bytes()).hexdigest()
                        for f in ("weights.safetensors", "card.json")])
    assert digests[0] == digests[1]


@pytest.mark.parametrize("hostile", ["x;touch {marker};y", "z$(touch {marker})", "q`touch {marker}`"])
def test_a_hostile_model_id_never_reaches_a_shell(tmp_path, hostile):
    """The stage commands carry no model id (the stage reads it from $DVC_STAGE), so `dvc repro` of a study whose
    id holds shell syntax runs none of it, and the stage refuses the id in one line that names it."""
    marker = tmp_path / "INJECTED"
    mid = hostile.format(marker=marker)
    study = {**TINY_STUDY, "models": {mid: TINY_STUDY["models"]["cnn_a"], **TINY_STUDY["models"]}}
    repo = make_repo(tmp_path / "repo", study)
    for args in (("repro",), ("repro", f"fetch@{mid}")):
        proc = dvc(repo, *args, check=False)
        assert proc.returncode != 0 and not marker.exists(), args
        assert f"model id {mid!r} is not allowed" in proc.stdout + proc.stderr  # the inputs stage, first, refuses it
        assert "Traceback" not in proc.stdout + proc.stderr
    # the stage alone, without the inputs stage before it: DVC finds its input link missing, and still runs no shell code
    proc = dvc(repo, "repro", "--single-item", f"fetch@{mid}", check=False)
    assert proc.returncode != 0 and not marker.exists() and mid in proc.stdout + proc.stderr


def test_a_changed_file_checkpoint_re_runs_its_fetch_stage_only(studied, tmp_path):
    """A ``file:`` checkpoint is a dependency of its fetch stage (through artifacts/inputs): new contents at the
    same path are seen by `dvc status` and re-fetched, and no other model's fetch runs."""
    work = tmp_path / "work"
    shutil.copytree(studied[0], work, symlinks=True)
    ckpt = tmp_path / "ckpt.safetensors"
    shutil.copy(work / "artifacts/models/cnn_a/weights.safetensors", ckpt)
    study = yaml.safe_load((work / "params.yaml").read_text())
    study["models"]["byo"] = {k: v for k, v in study["models"]["cnn_a"].items() if k != "train"} | {"source": f"file:{ckpt}"}
    write_study(work / "params.yaml", study)
    first = dvc(work, "repro", "fetch@byo").stdout
    assert sorted(ran_stages(first)) == ["fetch@byo", "inputs"]
    before = (work / "artifacts/models/byo/weights.safetensors").read_bytes()
    shutil.copy(work / "artifacts/models/cnn_b/weights.safetensors", ckpt)  # same path, new contents
    status = dvc(work, "status").stdout
    assert "fetch@byo" in status and "fetch@cnn_a" not in status and "fetch@cnn_b" not in status
    # the input links are re-hashed (their stage re-runs, in a second), then only the stage that reads the file
    assert sorted(ran_stages(dvc(work, "repro", "fetch@byo").stdout)) == ["fetch@byo", "inputs"]
    assert (work / "artifacts/models/byo/weights.safetensors").read_bytes() != before
