"""bench/gpu_check.py in its dry mode (the CPU on both sides): every comparison runs, and the figures obey what must
hold when both sides are the same hardware: float32 against float32 is bit for bit, FAISS finds the same
neighbours, PGD from the same start crafts the same examples; bfloat16 moves embeddings, a little."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_the_dry_run_compares_every_path_and_same_hardware_gives_the_same_numbers(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench/gpu_check.py"), "--dry", "--images", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["dry"] and [r["arch"] for r in res["embed"]] == ["resnet18", "vit_tiny_patch16_224", "convnext_atto"]
    for row in res["embed"]:
        assert row["float32"]["max_rel_diff"] == 0 and row["float32"]["top1_agreement"] == 1
        assert 0 < row["bfloat16"]["max_rel_diff"] < 0.05 and row["bfloat16"]["min_cosine"] > 0.999
    assert res["knn"]["same_neighbour_sets"] == 1 and not res["knn"]["device_is_gpu"]
    assert res["pgd"]["adversarial_agreement"] == 1
    assert res["pgd"]["cpu_robust_accuracy"] == res["pgd"]["device_robust_accuracy"]
    assert "| resnet18 |" in proc.stdout and "pgd 4 images" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the check would run")
def test_without_a_gpu_it_says_so_in_one_line_and_exits_2():
    proc = subprocess.run([sys.executable, str(REPO / "bench/gpu_check.py")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "no CUDA GPU" in proc.stderr and "--dry" in proc.stderr
