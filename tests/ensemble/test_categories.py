"""zooscope.ensemble.categories: category means and their bootstrap intervals, the finding line, best partners."""

import json

import numpy as np
import polars as pl
import pytest

from zooscope.ensemble import PAIRS_COLUMNS, best_partners, category_tables, finding, pairs_table, study_metrics
from zooscope.ensemble import interval95

N_BOOT = 400


def _study(seed=0):
    """Six pairs of four models; per-pair bootstrap draws spread around each pair's kappa, EI and gain."""
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame({
        "model_a": ["a", "a", "a", "b", "b", "c"], "model_b": ["b", "c", "d", "c", "d", "d"],
        "category": ["reinit", "reinit", "architecture", "framework", "framework", "architecture"],
        "acc_a": [0.90, 0.90, 0.90, 0.89, 0.89, 0.80], "acc_b": [0.89, 0.80, 0.70, 0.80, 0.70, 0.70],
        "kappa": [0.80, 0.78, 0.40, 0.42, 0.40, 0.45], "error_inconsistency": [0.05, 0.06, 0.2, 0.2, 0.25, 0.22],
        "gain": [0.001, 0.0, 0.02, 0.01, -0.01, 0.03], "gain_lo": [-0.01] * 6, "gain_hi": [0.04] * 6,
        "ens_acc": [0.901, 0.90, 0.92, 0.90, 0.88, 0.83], "cka_debiased": [0.9, float("nan"), 0.5, 0.4, 0.3, 0.6],
        "mutual_knn": [0.5, 0.4, 0.2, 0.2, 0.1, 0.3],
        "matched": [True, False, False, True, False, False],
    })
    draws = {stat: frame[stat].to_numpy()[:, None] + 0.01 * rng.normal(size=(len(frame), N_BOOT))
             for stat in ("kappa", "error_inconsistency", "gain")}
    return frame, draws


def test_category_means_and_intervals():
    frame, draws = _study()
    tables = category_tables(frame, draws)
    assert list(tables["all"]) == ["reinit", "architecture", "framework"]  # methodology order
    reinit = tables["all"]["reinit"]
    assert reinit["pairs"] == 2 and reinit["kappa"] == pytest.approx(0.79)
    assert (reinit["kappa_lo"], reinit["kappa_hi"]) == pytest.approx(interval95(draws["kappa"][:2].mean(0)))
    assert reinit["cka_debiased"] == pytest.approx(0.9)  # nan scores are left out of the mean
    assert list(tables["matched"]) == ["reinit", "framework"]
    assert tables["matched"]["framework"]["gain"] == pytest.approx(0.01)
    assert tables["matched"]["framework"]["pairs"] == 1


def test_finding_ranks_categories_and_says_which_gaps_are_clear():
    frame, draws = _study()
    line = finding(frame, draws)
    assert line.startswith("kappa, accuracy-matched pairs (95% CI): reinit 0.80 [")
    assert "] > framework 0.42 [" in line
    all_pairs = finding(frame.with_columns(matched=pl.lit(False)), draws)
    assert all_pairs.startswith("kappa, all pairs (95% CI): reinit 0.79")
    assert "] > architecture 0.43 [" in all_pairs and "] ~ framework 0.41 [" in all_pairs  # 0.425 vs 0.41: unclear


def test_best_partner_of_the_strongest_models():
    frame, _ = _study()
    per_class = pl.DataFrame({"model_a": ["a", "a"], "model_b": ["d", "d"], "ens_vs_better": [-0.1, 0.2]})
    best = best_partners(frame, per_class, strongest=2)
    assert list(best) == ["a", "b"]
    assert best["a"]["partner"] == "d" and best["a"]["partner_accuracy"] == 0.70  # a weaker partner helps most
    assert best["a"]["gain"] == 0.02 and best["a"]["classes_hurt"] == 1 and best["a"]["category"] == "architecture"
    assert best["b"]["partner"] == "c" and best["b"]["classes_hurt"] == 0


def test_pairs_table_puts_the_issue_columns_first_and_checks_the_pairs():
    frame, _ = _study()
    ensemble = frame.with_columns(*(pl.lit(0.0).alias(c) for c in PAIRS_COLUMNS if c not in frame.columns
                                    and c not in ("cka", "cka_debiased", "mutual_knn", "mutual_knn_null", "concat_probe_acc")))
    similarity = frame.select("model_a", "model_b", "category").with_columns(
        cka=pl.lit(0.5), mutual_knn_null=pl.lit(0.01), concat_probe_acc=pl.lit(0.9), cka_null=pl.lit(0.02))
    joined = pairs_table(ensemble.drop("cka_debiased", "mutual_knn"),
                         similarity.with_columns(cka_debiased=pl.lit(0.4), mutual_knn=pl.lit(0.3)))
    assert tuple(joined.columns[:len(PAIRS_COLUMNS)]) == PAIRS_COLUMNS and "cka_null" in joined.columns
    assert joined["cka"].to_list() == [0.5] * 6
    with pytest.raises(ValueError, match="re-run the similarity stage"):
        pairs_table(ensemble, similarity.head(5))


def test_study_metrics_layout_is_json_and_dvc_friendly():
    frame, draws = _study()
    tables = category_tables(frame, draws)
    per_class = pl.DataFrame({"model_a": ["a", "a"], "model_b": ["b", "b"], "ens_vs_better": [-0.1, float("nan")]})
    greedy = {"order": np.array([0, 2]), "accuracy": np.array([0.9, 0.92])}
    metrics = study_metrics(frame, draws, tables, per_class, greedy, ["a", "b", "c", "d"], matched_band=0.02,
                            n_boot=N_BOOT, strongest=1)
    assert metrics["categories"] == tables["all"] and metrics["categories_matched"] == tables["matched"]
    assert metrics["greedy"] == {"size_1": {"accuracy": 0.9, "added": "a"}, "size_2": {"accuracy": 0.92, "added": "c"}}
    assert metrics["finding"] == metrics["findings"][0] and metrics["findings"][2].startswith("gain, accuracy-matched")
    assert metrics["pair_classes_hurt"] == 0.5 and metrics["matched_pairs"] == 2
    json.dumps(metrics, allow_nan=False)


def test_finding_lines_write_small_rates_with_enough_places():
    frame, draws = _study()
    gain = finding(frame, draws, stat="gain")
    ei = finding(frame, draws, stat="error_inconsistency")
    assert gain.startswith("gain, accuracy-matched pairs (95% CI): ")
    number = gain.split(": ", 1)[1].split(" ")[1]
    assert len(number.split(".")[1]) == 4 and number[0] in "+-"
    assert len(ei.split(": ", 1)[1].split(" ")[1].split(".")[1]) == 3
