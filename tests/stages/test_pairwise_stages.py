"""The pairwise stages (similarity, ensemble) under a real `dvc repro` of the tiny digits study."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from tests.conftest import TINY_STUDY
from tests.dvcrepo import dvc, ran_stages
from zooscope.ensemble import bootstrap_pair, disagreement, error_consistency, pair_ensemble
from zooscope.ensemble import PAIRS_COLUMNS
from zooscope.vocab import CATEGORIES
from zooscope.similarity import linear_cka, linear_cka_debiased, mutual_knn

pytestmark = pytest.mark.slow


def test_pairs_table_matches_a_pair_recomputed_from_the_prediction_files(studied):
    repo, _ = studied
    frame = pl.read_parquet(repo / "artifacts/pairs.parquet")
    assert tuple(frame.columns[:len(PAIRS_COLUMNS)]) == PAIRS_COLUMNS
    assert len(frame) == 6 and set(frame["category"]) <= set(CATEGORIES)
    row = frame.filter(model_a="cnn_a", model_b="mlp").row(0, named=True)
    probs, correct, pred = {}, {}, {}
    for mid in ("cnn_a", "mlp"):
        table = pl.read_parquet(repo / f"artifacts/predictions/{mid}/eval.parquet")
        probs[mid] = np.load(repo / f"artifacts/predictions/{mid}/eval_probs.npy")
        correct[mid], pred[mid], labels = table["correct"].to_numpy(), table["pred"].to_numpy(), table["label"].to_numpy()
    agree = error_consistency(correct["cnn_a"], correct["mlp"])
    ens = pair_ensemble(probs["cnn_a"], probs["mlp"], labels)
    ens_correct = (probs["cnn_a"].astype(np.float64) + probs["mlp"]).argmax(1) == labels
    boot = bootstrap_pair(correct["cnn_a"], correct["mlp"], ens_correct, n_boot=TINY_STUDY["ensemble"]["n_boot"],
                          seed=TINY_STUDY["ensemble"]["seed"])
    expected = {key: agree[key] for key in ("kappa", "kappa_max", "error_inconsistency", "error_corr")} | {
        "acc_a": ens["acc_a"], "acc_b": ens["acc_b"], "ens_acc": ens["acc_ensemble"], "gain": ens["gain"],
        "conversion": ens["conversion_rate"], "disagreement": disagreement(pred["cnn_a"], pred["mlp"]),
        "kappa_lo": boot["kappa"][0], "kappa_hi": boot["kappa"][1], "gain_lo": boot["gain"][0], "gain_hi": boot["gain"][1],
    }
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    x, y = (np.load(repo / f"artifacts/embeddings/{mid}/eval.npy") for mid in ("cnn_a", "mlp"))
    assert row["cka"] == pytest.approx(linear_cka(x, y)) and row["cka_debiased"] == pytest.approx(linear_cka_debiased(x, y))
    assert row["mutual_knn"] == mutual_knn(x, y, k=TINY_STUDY["similarity"]["knn_k"])
    assert row["category"] == "architecture" and 0 < row["concat_probe_acc"] <= 1
    # what is chosen among pairs is chosen on the calibration split: its gain from the calibration files
    cal = {mid: np.load(repo / f"artifacts/predictions/{mid}/calibration_probs.npy") for mid in ("cnn_a", "mlp")}
    cal_labels = pl.read_parquet(repo / "artifacts/predictions/cnn_a/calibration.parquet")["label"].to_numpy()
    cal_ens = pair_ensemble(cal["cnn_a"], cal["mlp"], cal_labels)
    assert (row["cal_acc_a"], row["cal_acc_b"], row["cal_gain"]) == pytest.approx(
        (cal_ens["acc_a"], cal_ens["acc_b"], cal_ens["gain"]), rel=1e-12, abs=1e-15)


def test_study_metrics_plots_and_finding(studied, tmp_path):
    repo, out = studied
    study = json.loads((repo / "metrics/study.json").read_text())
    assert study["pairs"] == 6 and study["categories"] and study["finding"].startswith("kappa, ")
    # the DVC metrics: one flat file per category, its numbers those of the full results
    shown = next(v["data"] for v in json.loads(dvc(repo, "metrics", "show", "--json").stdout).values())
    for category in CATEGORIES:
        row = shown[f"metrics/categories/{category}.json"]["data"]
        assert all(isinstance(v, (int, float)) or v is None for v in row.values()), category
        full = study["categories"].get(category)
        assert row["pairs"] == (full["pairs"] if full else 0)
        if full:
            assert (row["kappa"], row["kappa_zoo_lo"], row["gain_hi"]) == (full["kappa"], full["kappa_zoo_lo"], full["gain_hi"])
    assert "metrics/study.json" not in shown  # the full results are git-tracked, not a (350-column) DVC metric
    assert set(study["categories"]) | set(study["categories_matched"]) <= set(CATEGORIES) and len(study["greedy"]) == 4
    # the greedy members were chosen on calibration; each size's accuracy is that ensemble's on eval
    stored_greedy = json.loads((repo / "metrics/study.json").read_text())["greedy"]
    members = [stored_greedy[f"size_{k}"]["added"] for k in range(1, 5)]
    labels = pl.read_parquet(repo / "artifacts/predictions/cnn_a/eval.parquet")["label"].to_numpy()
    total = 0
    for k, mid in enumerate(members, 1):
        total = total + np.load(repo / f"artifacts/predictions/{mid}/eval_probs.npy").astype(np.float64)
        assert stored_greedy[f"size_{k}"]["accuracy"] == pytest.approx(float((total.argmax(1) == labels).mean()))
    cal_first = max(TINY_STUDY["models"], key=lambda m: (np.load(
        repo / f"artifacts/predictions/{m}/calibration_probs.npy").argmax(1) == pl.read_parquet(
        repo / f"artifacts/predictions/{m}/calibration.parquet")["label"].to_numpy()).mean())
    assert members[0] == cal_first
    stored = study
    assert [f.split(",")[0] for f in stored["findings"]] == ["kappa", "error_inconsistency", "gain (points)"]
    assert f"\n{study['finding']}\n" in out  # printed at the end of the ensemble stage
    plots = json.loads(dvc(repo, "plots", "show", "--json", "-o", str(tmp_path / "html")).stdout)["data"]
    for name in ("cka_heatmap", "kappa_by_category", "gain_vs_kappa", "greedy_curve", "partner_gain", "subgroup_gap"):
        assert plots[f"plots/{name}.csv"] and plots[f"plots/{name}.csv"][0]["type"] == "vega", name


def test_partner_choice_without_labels(studied, capsys):
    """The label-free features from the prediction files, each model's held-out ranking from an explicit
    leave-one-model-out loop (scikit-learn's Ridge), its plot data, and `zooscope partners`."""
    from scipy.stats import spearmanr
    from sklearn.linear_model import Ridge

    from zooscope.cli import main
    from zooscope.ensemble.partners import FEATURES, RIDGE_ALPHA

    repo, out = studied
    frame = pl.read_parquet(repo / "artifacts/pairs.parquet")
    models = list(TINY_STUDY["models"])
    top = {m: pl.read_parquet(repo / f"artifacts/predictions/{m}/eval.parquet")["top5"].to_list() for m in models}
    conf = {m: float(np.load(repo / f"artifacts/predictions/{m}/eval_probs.npy").astype(np.float64).max(1).mean())
            for m in models}
    for r in frame.iter_rows(named=True):
        a, b = r["model_a"], r["model_b"]
        assert r["top5_overlap"] == pytest.approx(np.mean([len(set(x) & set(y)) / 5 for x, y in zip(top[a], top[b])]))
        assert (r["confidence_gap"], r["confidence_min"]) == pytest.approx((abs(conf[a] - conf[b]), min(conf[a], conf[b])))
    results = json.loads((repo / "metrics/study.json").read_text())["partners"]
    for m in models:
        train, mine = frame.filter((pl.col("model_a") != m) & (pl.col("model_b") != m)), frame.filter(
            (pl.col("model_a") == m) | (pl.col("model_b") == m))
        x, test = (f.select(FEATURES).to_numpy().astype(float) for f in (train, mine))
        mean = np.nanmean(x, 0)
        x, test = np.where(np.isnan(x), mean, x), np.where(np.isnan(test), mean, test)
        std = np.where(x.std(0) > 0, x.std(0), 1.0)
        want = Ridge(alpha=RIDGE_ALPHA * len(x)).fit((x - mean) / std, train["gain"].to_numpy()).predict((test - mean) / std)
        got = np.where(mine["model_a"] == m, mine["predicted_gain_a"], mine["predicted_gain_b"])
        assert got == pytest.approx(want, abs=1e-12), m
        partner = np.where(mine["model_a"] == m, mine["model_b"], mine["model_a"])
        mine_result = results["models"][m]
        assert mine_result["predicted_order"] == list(partner[np.argsort(-got, kind="stable")])
        measured = mine["gain"].to_numpy()
        assert set(mine_result["best"]) == set(partner[np.isclose(measured, measured.max(), rtol=0, atol=1e-12)])
        rho = spearmanr(got, mine["gain"].to_numpy()).statistic
        assert mine_result["spearman"] == (None if np.isnan(rho) else pytest.approx(rho))
        assert mine_result["chance"] == 1.0 and mine_result["hit"]  # 3 partners: a top 3 holds them all
    assert results["summary"]["models"] == 4 and results["missing"] == {f: 0 for f in FEATURES}
    assert "partners without labels, each model left out: mean Spearman" in out
    plot = pl.read_csv(repo / "plots/partner_gain.csv")
    assert len(plot) == 12 and set(plot.columns) >= {"model", "partner", "predicted_gain", "gain"}
    # the command line ranks cnn_a's partners as the evaluation did, and says how it did
    assert main(["partners", "cnn_a", "--params", str(repo / "params.yaml"), "--pairs", str(repo / "artifacts/pairs.parquet"),
                 "--study-metrics", str(repo / "metrics/study.json")]) == 0
    printed = capsys.readouterr().out
    ranked = [line.split()[1] for line in printed.splitlines() if line.strip()[:1].isdigit()]
    assert ranked == results["models"]["cnn_a"]["predicted_order"] and printed.splitlines()[-1].startswith("On this zoo: ")


def test_adding_a_model_computes_only_its_pairs(grown):
    work, out = grown
    stages = [*(f"{s}@kd_a" for s in ("fetch", "embed", "probe", "predict", "shifted")), "inputs", "similarity",
              "ensemble", "mistakes", "shift", "compression", "report"]
    assert sorted(ran_stages(out)) == sorted(stages)
    assert "similarity: 10 pairs, 4 computed" in out and "ensemble: 10 pairs, 4 computed" in out
    assert "concatenated probes 10, 4 computed" in out
    assert len(pl.read_parquet(work / "artifacts/pairs.parquet")) == 10
