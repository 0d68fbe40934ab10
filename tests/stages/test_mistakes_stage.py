"""The mistakes stage under a real `dvc repro` of the tiny digits study, and `zooscope explain` on it."""

from __future__ import annotations

import json
import sys

import numpy as np
import polars as pl
import pytest

from tests.conftest import TINY_STUDY
from tests.dvcrepo import _run
from zooscope.report.data import load_mistakes
from zooscope.report.mistake_sections import consensus_rows, critic_picks, transfer_view

pytestmark = pytest.mark.slow
MODELS = list(TINY_STUDY["models"])
CFG = TINY_STUDY["mistakes"]


def test_mistakes_tables_metrics_and_findings(studied):
    repo, out = studied
    art = repo / "artifacts/mistakes"
    assert (repo / "artifacts/probes/randfeat/probe.safetensors").exists()  # the headless model's probe weights
    tax = pl.read_parquet(art / "taxonomy.parquet")
    for row in tax.iter_rows(named=True):
        pred = pl.read_parquet(repo / f"artifacts/predictions/{row['model']}/eval.parquet")
        assert row["correct"] == pred["correct"].sum() and row["n"] == row["correct"] + row["near_miss"] + row["far_miss"]
        # digits' 10 classes: k = 2, a near miss is an error whose label is the second choice
        second = np.stack(pred["top5"].to_numpy())[:, 1] == pred["label"].to_numpy()
        assert row["near_miss"] == second.sum()
    overlap = pl.read_parquet(art / "prototype_overlap.parquet")
    assert overlap.columns == ["class", "model_a", "model_b", "mmd2", "reference", "ratio"]
    assert len(overlap) == 10 * 6 and (overlap["mmd2"] >= 0).all() and (overlap["reference"] > 0).all()
    # the transfer matrix's diagonal is each model's own robust accuracy, also in the robustness table
    loaded = load_mistakes(art, repo / "metrics/mistakes.json")
    section = transfer_view(loaded.tables["transfer"], loaded.metrics["transfer_kappa"])
    assert section["models"] == MODELS and section["transfer"].shape == (4, 4)
    rob = pl.read_parquet(art / "robustness.parquet").filter(attack=CFG["transfer_attack"], eps=CFG["transfer_eps"])
    transfer = loaded.tables["transfer"]
    off = transfer.filter(pl.col("source") != pl.col("target"))
    # the transfer rate: of the eligible samples (both right when clean, the source fooled), the share fooling the
    # target; a rate exists where a sample is eligible, inside its interval, and never above the attacked subset
    assert (off["eligible"] <= CFG["attack_subset"]).all()
    rated = off.filter(pl.col("eligible") > 0)
    assert len(rated) and ((rated["transfer_rate_lo"] <= rated["transfer_rate"])
                           & (rated["transfer_rate"] <= rated["transfer_rate_hi"])).all()
    assert ((rated["transfer_rate"] * rated["eligible"]).round(9) % 1 == 0).all()  # a count over the eligible ones
    assert transfer.filter(pl.col("source") == pl.col("target"))["transfer_rate"].is_nan().all()
    pairs = pl.read_parquet(repo / "artifacts/pairs.parquet")
    k = pairs.filter(model_a="cnn_a", model_b="mlp")["kappa"][0]
    assert section["kappa"][0, 2] == section["kappa"][2, 0] == pytest.approx(k)
    clean = pl.read_parquet(art / "robustness.parquet").filter(eps=0.0, attack="pgd")
    assert (clean["accuracy"].to_numpy() >= rob.sort("model")["accuracy"].to_numpy()).all()
    picks = critic_picks(loaded.tables["prototypes"])
    assert set(picks) == set(MODELS) and all(len(c["prototypes"]) == CFG["prototypes"] for c in picks["cnn_a"].values())
    consensus = consensus_rows(loaded.tables["consensus"], MODELS, top=3)
    assert all(set(r["votes"]) == set(MODELS) and r["share"] >= CFG["consensus_share"] for r in consensus)
    rows, images = loaded.tables["adversarial"].to_dicts(), loaded.adversarial_images
    assert len(rows) == len(images) and (images.min() >= 0 if len(images) else True)
    shown = json.loads((repo / "metrics/mistakes.json").read_text())
    assert shown["consensus_errors"] == len(pl.read_parquet(art / "consensus.parquet"))
    assert shown["near_miss_k"] == 2 and shown["prototype_mmd_ratio_mean"] == pytest.approx(overlap["ratio"].mean())
    assert set(shown["taxonomy"]) == set(MODELS)
    stored = json.loads((repo / "metrics/mistakes.json").read_text())
    assert [f.split(":")[0] for f in stored["findings"]] == ["consensus errors", "neighbour disagreement",
                                                            "adversarial transfer"]
    assert "\n".join(stored["findings"]) + "\n" in out  # printed at the end of the stage


def test_explain_prints_the_nearest_training_samples(studied, digits, tmp_path):
    repo, _ = studied
    sample = int(digits.sample_ids[digits.split("eval")[0]])
    page = tmp_path / "page.html"
    proc = _run([sys.executable, "-m", "zooscope.cli", "explain", "cnn_a", str(sample), "-k", "3", "--out", str(page)],
                repo)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"sample {sample} (eval split") and len(lines) == 9
    pred = pl.read_parquet(repo / "artifacts/predictions/cnn_a/eval.parquet").row(0, named=True)
    assert pred["sample_id"] == sample and lines[1].startswith(f"cnn_a predicts {digits.classes[pred['pred']]} with ")
    train_ids = set(digits.sample_ids[digits.split("train")].tolist())
    assert all(int(line.split()[1]) in train_ids for line in lines[4:7])
    assert lines[-1] == f"written: {page}" and f"Sample {sample}" in page.read_text()
