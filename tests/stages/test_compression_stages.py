"""Compressed models (recipe:prune, recipe:quantize) through a real `dvc repro` of the tiny digits study: the
sparsity counted from the weights file, the pruned weights the parent's smallest, churn and kappa with the parent
recounted from the predictions (scikit-learn's kappa), the corrupted sets' churn from the shifted probabilities, their
pairs outside the paper's categories, and the report's section."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import polars as pl
import pytest
import yaml
from safetensors.numpy import load_file
from sklearn.metrics import cohen_kappa_score

from tests.conftest import _TAGS, TINY_STUDY, write_study
from tests.dvcrepo import dvc, ran_stages

pytestmark = pytest.mark.slow

PARENT = copy.deepcopy(TINY_STUDY["models"]["cnn_a"])
COMPRESSED = {
    "a_p60": {"source": "recipe:prune", "tags": {**_TAGS, "framework": "prune-0.6"},
              "train": {"parent": PARENT, "sparsity": 0.6}},
    "a_p80_ft": {"source": "recipe:prune", "tags": {**_TAGS, "framework": "prune-0.8-ft"},
                 "train": {"parent": PARENT, "sparsity": 0.8, "epochs": 1}},
    "a_int8": {"source": "recipe:quantize", "tags": {**_TAGS, "framework": "int8"},
               "train": {"parent": PARENT, "calibration_images": 256}},
}


@pytest.fixture(scope="module")
def compressed(studied, tmp_path_factory):
    """The studied repository with the three compressed models of cnn_a added, re-run: (repository, output)."""
    repo = tmp_path_factory.mktemp("compressed") / "repo"
    shutil.copytree(studied[0], repo, symlinks=True)
    study = yaml.safe_load((repo / "params.yaml").read_text())
    study["models"] |= copy.deepcopy(COMPRESSED)
    write_study(repo / "params.yaml", study)
    return repo, dvc(repo, "repro").stdout


def _conv_linear(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Conv (4-D) and linear (2-D) weights of a state dict, picked by shape."""
    return {k: v for k, v in weights.items() if k.endswith(".weight") and v.ndim in (2, 4)}


def test_the_new_models_run_their_own_stages_and_the_old_ones_are_kept(compressed):
    repo, out = compressed
    ran = set(ran_stages(out))
    for mid in COMPRESSED:
        assert {f"fetch@{mid}", f"predict@{mid}", f"shifted@{mid}"} <= ran
    assert not any(s.endswith(("@cnn_a", "@cnn_b", "@mlp", "@randfeat")) for s in ran)
    assert {"compression", "report"} <= ran


def test_sparsity_and_pruned_weights_counted_from_the_files(compressed):
    repo, _ = compressed
    table = pl.read_parquet(repo / "artifacts/compression.parquet")
    assert table["model"].to_list() == list(COMPRESSED) and set(table["parent"]) == {"cnn_a"}
    assert table["same_parent_weights"].all()
    parent = _conv_linear(load_file(repo / "artifacts/models/cnn_a/weights.safetensors"))
    for mid, target in (("a_p60", 0.6), ("a_p80_ft", 0.8)):
        mine = _conv_linear(load_file(repo / f"artifacts/models/{mid}/weights.safetensors"))
        zero = np.concatenate([(mine[k] == 0).ravel() for k in parent])
        total = len(zero)
        row = table.filter(pl.col("model") == mid).row(0, named=True)
        assert row["sparsity"] == pytest.approx(zero.sum() / total) and abs(zero.sum() - target * total) <= 1
        magnitude = np.concatenate([np.abs(parent[k]).ravel() for k in parent])
        assert magnitude[zero].max() <= magnitude[~zero].min()  # the parent's smallest weights, over all layers
        kept_same = np.array_equal(np.concatenate([mine[k].ravel() for k in parent])[~zero],
                                   np.concatenate([parent[k].ravel() for k in parent])[~zero])
        assert kept_same == (mid == "a_p60")  # fine-tuning moved the kept weights; the zeros stayed
    q = _conv_linear(load_file(repo / "artifacts/models/a_int8/weights.safetensors"))
    for k, w in parent.items():
        scale = np.abs(w.reshape(len(w), -1)).max(1) / 127.5
        ints = q[k].reshape(len(w), -1).astype(np.float64) / scale[:, None]
        assert np.allclose(ints, np.round(ints), atol=1e-3), k


def test_churn_kappa_and_the_intervals_recounted_from_the_predictions(compressed):
    repo, _ = compressed
    table = pl.read_parquet(repo / "artifacts/compression.parquet")
    parent = pl.read_parquet(repo / "artifacts/predictions/cnn_a/eval.parquet")
    shift = json.loads((repo / "metrics/shift.json").read_text())
    for row in table.iter_rows(named=True):
        mine = pl.read_parquet(repo / f"artifacts/predictions/{row['model']}/eval.parquet")
        assert mine["sample_id"].equals(parent["sample_id"])
        pred, ppred, y = mine["pred"].to_numpy(), parent["pred"].to_numpy(), mine["label"].to_numpy()
        assert row["churn"] == pytest.approx((pred != ppred).mean())
        assert row["kappa"] == pytest.approx(cohen_kappa_score(pred == y, ppred == y))
        assert row["top1_delta"] == pytest.approx((pred == y).mean() - (ppred == y).mean())
        assert row["right_to_wrong"] == pytest.approx(((ppred == y) & (pred != y)).mean())
        assert row["churn_lo"] <= row["churn"] <= row["churn_hi"]
        assert row["top1_delta_lo"] <= row["top1_delta"] <= row["top1_delta_hi"]
        flips = [(np.load(repo / f"artifacts/shifted/{row['model']}/{s}.npy").argmax(1)
                  != np.load(repo / f"artifacts/shifted/cnn_a/{s}.npy").argmax(1)).mean() for s in shift["corrupted_sets"]]
        assert row["shift_churn"] == pytest.approx(np.mean(flips))
        assert row["shift_top1"] == pytest.approx(shift["models"][row["model"]]["mean_top1"])
    int8 = table.filter(pl.col("model") == "a_int8").row(0, named=True)
    assert int8["bits"] == 8 and int8["churn"] < 0.1  # int8 barely moves a network; 60% pruning moves this one more


def test_compressed_pairs_stay_out_of_the_paper_categories(studied, compressed):
    repo, _ = compressed
    pairs = pl.read_parquet(repo / "artifacts/pairs.parquet")
    category = {(a, b): c for a, b, c in pairs.select("model_a", "model_b", "category").rows()}
    assert category["cnn_a", "a_p60"] == "compression" and category["a_p60", "a_int8"] == "compression"
    assert category["cnn_b", "a_p60"] == "compressed-other"
    before, after = (json.loads((r / "metrics/study.json").read_text()) for r in (studied[0], repo))
    assert after["categories"] == before["categories"]  # means and both intervals: the zoo bootstrap skips them too
    assert after["headline"] == before["headline"]
    # partner choice is fit and evaluated among the models trained apart: the same evaluation as without them
    assert after["partners"]["summary"] == before["partners"]["summary"]
    plot = pl.read_csv(repo / "plots/partner_gain.csv")
    assert not set(plot["model"]) & set(COMPRESSED) and not set(plot["partner"]) & set(COMPRESSED)
    # the zoo's probit line is fit on the models trained apart: the old models' effective robustness is unchanged
    old = json.loads((studied[0] / "metrics/shift.json").read_text())["models"]
    new = json.loads((repo / "metrics/shift.json").read_text())["models"]
    for mid in TINY_STUDY["models"]:
        assert new[mid]["effective_robustness"] == pytest.approx(old[mid]["effective_robustness"])


def test_the_report_shows_the_section_and_the_plot_data(compressed):
    repo, _ = compressed
    page = (repo / "reports/index.html").read_text()
    section = page[page.index('id="compression"'):]
    assert "Compressed models against their parents" in section and all(m in section for m in COMPRESSED)
    plot = pl.read_csv(repo / "plots/compression.csv")
    assert set(plot["statistic"]) == {"top1", "churn", "kappa", "shift_top1", "worst_class_delta"}
    parent_rows = plot.filter(pl.col("method") == "parent")
    assert (parent_rows["sparsity"] == 0).all() and set(parent_rows["model"]) == {"cnn_a"}
