"""Bad inputs and interruptions under a real `dvc repro`: a model with NaN weights stops at its fetch stage and
loses nothing; a dataset whose class count changes re-runs cleanly (the pair caches recompute what no longer fits);
`kill -9` of the process group at seeded moments resumes to byte-identical outputs; a temporary file left by a
killed write is never hashed and is removed by the next write."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import torch
import yaml

from tests.conftest import TINY_STUDY, write_study
from tests.datafiles import write_image_folder
from tests.dvcrepo import dvc, make_repo, ran_stages
from zooscope.io import write_safetensors

pytestmark = pytest.mark.slow

OUTPUTS = ("artifacts", "metrics", "plots", "reports", "dvc.lock")


def digests(repo: Path) -> dict[str, str]:
    """sha256 of every file the pipeline writes (DVC's own .gitignore files aside), by path."""
    out = {}
    for top in OUTPUTS:
        for path in sorted([repo / top] if (repo / top).is_file() else (repo / top).rglob("*")):
            if path.is_file() and path.name != ".gitignore":
                out[str(path.relative_to(repo))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def copy_of(studied, tmp_path: Path) -> Path:
    work = tmp_path / "work"
    shutil.copytree(studied[0], work, symlinks=True)
    return work


def test_a_model_with_nan_weights_stops_at_its_fetch_and_loses_nothing(studied, tmp_path):
    work = copy_of(studied, tmp_path)
    before = digests(work)
    ckpt = tmp_path / "nan.safetensors"
    from safetensors.torch import load_file

    state = load_file(str(work / "artifacts/models/cnn_a/weights.safetensors"))
    state["head.bias"][3] = float("nan")
    write_safetensors(ckpt, state)
    study = yaml.safe_load((work / "params.yaml").read_text())
    study["models"]["byo"] = {k: v for k, v in study["models"]["cnn_a"].items() if k != "train"} | {
        "source": f"file:{ckpt}", "tags": {**study["models"]["cnn_a"]["tags"], "seed": 3}}
    write_study(work / "params.yaml", study)
    proc = dvc(work, "repro", check=False)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in said
    assert "model byo: weights: 1 of" in said and "head.bias (1 NaN, 0 inf)" in said
    assert not (work / "artifacts/models/byo/weights.safetensors").exists()  # nothing of it reached the DVC cache
    after = digests(work)
    now = ("dvc.lock", "artifacts/settings.json")  # the inputs stage resolved the study with byo in it
    assert {k: after[k] for k in before if k not in now} == {k: v for k, v in before.items() if k not in now}
    assert "byo" in json.loads((work / "artifacts/settings.json").read_text())["models"]
    status = dvc(work, "status").stdout
    assert "fetch@byo" in status and "fetch@cnn_a" not in status and "embed@cnn_a" not in status


def _folder_study(root: Path) -> dict:
    models = {mid: TINY_STUDY["models"][mid] for mid in ("cnn_a", "mlp")}
    return {**TINY_STUDY, "models": models,
            "dataset": {"source": f"imagefolder:{root}", "image_size": 8, "seed": 0, "calibration_size": 0.2,
                        "eval_size": 0.3},
            "ensemble": {**TINY_STUDY["ensemble"], "class_groups": {}},
            "mistakes": {**TINY_STUDY["mistakes"], "attack_subset": 10, "max_candidates": 50}}


def test_recipes_on_an_image_folder_and_a_class_count_that_changes(tmp_path):
    """Recipe models train on an image folder decoded at dataset.image_size; a fourth class folder makes every
    stage re-run (the folder is a dependency), and the pair caches, whose per-class rows had three classes, give
    tables of four: nothing of the old shape is mixed in, and nobody deletes a cache by hand."""
    images = tmp_path / "images"
    write_image_folder(images, {"circle": 20, "square": 20, "stripe": 20}, size=(8, 8))
    repo = make_repo(tmp_path / "repo", _folder_study(images))
    dvc(repo, "repro", "ensemble")
    per_class = pl.read_parquet(repo / "artifacts/pairs_per_class.parquet")
    assert sorted(set(per_class["class"])) == [0, 1, 2] and len(per_class) == 3
    write_image_folder(images, {"wave": 20}, size=(8, 8), seed=1)
    status = dvc(repo, "status").stdout
    assert "fetch@cnn_a" in status and "similarity" in status
    out = dvc(repo, "repro", "ensemble")
    assert "ensemble" in ran_stages(out.stdout) and "Traceback" not in out.stdout + out.stderr
    per_class = pl.read_parquet(repo / "artifacts/pairs_per_class.parquet")
    assert sorted(set(per_class["class"])) == [0, 1, 2, 3] and len(per_class) == 4
    cache = pl.read_parquet(next((repo / "artifacts/pair_cache").rglob("ensemble.parquet")))
    assert len(cache) == 1 and all(len(v) == 4 for v in cache["class_ens_right"].to_list())


def _kill_during(repo: Path, stage: str, marker: str, delay: float) -> bool:
    """Start `dvc repro -f -s <stage>`, and ``delay`` seconds after the stage prints ``marker`` (a progress bar of
    its work: DVC streams the stage's output), ``kill -9`` its process group. Returns whether it was still running."""
    env = {**os.environ, "ZOOSCOPE_PYTHON": sys.executable, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "-f", "-s", stage], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    for line in proc.stdout:  # text mode splits progress bars' carriage returns into lines too
        if marker in line:
            break
    time.sleep(delay)
    running = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return running


@pytest.mark.parametrize(("stage", "marker"), [("fetch@cnn_b", "train:"), ("similarity", "CKA, mutual k-NN"),
                                               ("ensemble", "pair ensembles")])
def test_kill_9_at_a_seeded_moment_resumes_to_identical_outputs(studied, tmp_path, stage, marker):
    """During training (fetch), inside the pairwise stages (similarity writes its pair caches chunk by chunk,
    ensemble its tables): the process group is killed at a seeded moment of the stage's work, then `dvc repro`
    finishes the study, and every output matches the uninterrupted run byte for byte."""
    work = copy_of(studied, tmp_path)
    expected = digests(work)
    shutil.rmtree(work / "artifacts/pair_cache")  # the pairwise stages compute every pair again
    delay = random.Random(stage).uniform(0.0, 0.1)
    assert _kill_during(work, stage, marker, delay), f"{stage} finished before the kill"
    out = dvc(work, "repro")
    assert "Traceback" not in out.stdout + out.stderr
    assert digests(work) == expected, f"killed {delay:.3f} s into {stage}'s work"
    assert not [p for p in work.rglob(".*.tmp*")]


def test_a_temporary_file_left_by_a_killed_write_is_ignored_and_cleaned(studied, tmp_path):
    """What a kill inside ``atomic_path`` leaves (``.<name>.<random>.tmp.<ext>``) in a persistent cache and in a
    folder other stages depend on: DVC does not hash it (``dvc status`` is clean), and the next write of the
    same file removes it."""
    work = copy_of(studied, tmp_path)
    cache = next((work / "artifacts/pair_cache").rglob("ensemble.parquet"))
    left = [cache.parent / f".{cache.name}.k1ll3d.tmp.parquet", work / "artifacts/embeddings/cnn_a/.eval.npy.x9.tmp.npy"]
    for path in left:
        path.write_bytes(b"half a file")
    assert "changed" not in dvc(work, "status").stdout
    assert ran_stages(dvc(work, "repro").stdout) == []
    dvc(work, "repro", "-f", "-s", "ensemble")
    dvc(work, "repro", "-f", "-s", "embed@cnn_a")
    assert not any(path.exists() for path in left)
