"""zooscope.ensemble.categories: category means and their bootstrap intervals, the finding line, best partners."""

import json

import numpy as np
import polars as pl
import pytest

from zooscope.ensemble import (PAIRS_COLUMNS, best_partners, category_tables, finding, format_categories, headline,
                               pairs_table, study_metrics)
from zooscope.ensemble import interval95, model_resample_weights

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
        "matched": [True, False, False, True, False, False], "weak_pair": [False, False, True, False, True, True],
    })
    # on the calibration split the same accuracies, but a+c (not a+d, as on eval) is a's best partner
    frame = frame.with_columns(cal_acc_a=pl.col("acc_a"), cal_acc_b=pl.col("acc_b"),
                               cal_gain=pl.Series([0.001, 0.05, 0.02, 0.01, -0.01, 0.03]))
    draws = {stat: frame[stat].to_numpy()[:, None] + 0.01 * rng.normal(size=(len(frame), N_BOOT))
             for stat in ("kappa", "error_inconsistency", "gain")}
    return frame, draws


def _fixed_zoo(frame):
    """Pair counts of a zoo that is never redrawn: every pair once in every resample."""
    return np.ones((N_BOOT, len(frame)))


def _zoo(frame, seed=0):
    index = {m: i for i, m in enumerate("abcd")}
    ia, ib = ([index[m] for m in frame[col]] for col in ("model_a", "model_b"))
    return model_resample_weights(np.array(ia), np.array(ib), 4, n_boot=N_BOOT, seed=seed)


def test_category_means_and_intervals():
    frame, draws = _study()
    tables = category_tables(frame, draws, _zoo(frame))
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
    line = finding(frame, draws, _fixed_zoo(frame))
    assert line.startswith("kappa, accuracy-matched pairs (95% CI over images; over models and images): reinit 0.80 [")
    assert "] > framework 0.42 [" in line
    all_pairs = finding(frame.with_columns(matched=pl.lit(False)), draws, _fixed_zoo(frame))
    assert all_pairs.startswith("kappa, all pairs (95% CI over images; over models and images): reinit 0.79")
    assert "] > architecture 0.43 [" in all_pairs and "] ~ framework 0.41 [" in all_pairs  # 0.425 vs 0.41: unclear


def test_best_partner_is_chosen_on_calibration_and_reported_on_eval():
    frame, _ = _study()
    per_class = pl.DataFrame({"model_a": ["a", "a"], "model_b": ["c", "c"], "ens_vs_better": [-0.1, 0.2]})
    best = best_partners(frame, per_class, strongest=2)
    assert list(best) == ["a", "b"]
    assert best["a"]["partner"] == "c" and best["a"]["partner_accuracy"] == 0.80  # a weaker partner helps most
    assert best["a"]["calibration_gain"] == 0.05 and best["a"]["gain"] == 0.0  # eval's own best (d, +0.02) is not used
    assert best["a"]["classes_hurt"] == 1 and best["a"]["category"] == "reinit"
    assert best["b"]["partner"] == "c" and best["b"]["classes_hurt"] == 0
    # the strongest models are ranked on calibration too
    swapped = frame.with_columns(cal_acc_a=pl.when(pl.col("model_a") == "c").then(0.99).otherwise(pl.col("cal_acc_a")),
                                 cal_acc_b=pl.when(pl.col("model_b") == "c").then(0.99).otherwise(pl.col("cal_acc_b")))
    assert list(best_partners(swapped, per_class, strongest=1)) == ["c"]


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
    tables = category_tables(frame, draws, _zoo(frame))
    per_class = pl.DataFrame({"model_a": ["a", "a"], "model_b": ["b", "b"], "ens_vs_better": [-0.1, float("nan")]})
    greedy = {"order": np.array([0, 2]), "accuracy": np.array([0.9, 0.92])}
    metrics = study_metrics(frame, draws, _zoo(frame), tables, per_class, greedy, ["a", "b", "c", "d"], matched_band=0.02,
                            n_boot=N_BOOT, strongest=1, lint=["a warning"])
    assert metrics["categories"] == tables["all"] and metrics["categories_matched"] == tables["matched"]
    assert metrics["categories_without_weak"] == tables["strong"] and metrics["lint"] == ["a warning"]
    assert metrics["greedy"] == {"size_1": {"accuracy": 0.9, "added": "a"}, "size_2": {"accuracy": 0.92, "added": "c"}}
    assert metrics["finding"] == metrics["findings"][0] and metrics["findings"][2].startswith("gain (points), accuracy-matched")
    assert metrics["pair_classes_hurt"] == 0.5 and metrics["matched_pairs"] == 2
    json.dumps(metrics, allow_nan=False)


def test_finding_lines_write_gains_in_points_and_small_rates_with_enough_places():
    frame, draws = _study()
    gain = finding(frame, draws, _zoo(frame), stat="gain")
    ei = finding(frame, draws, _zoo(frame), stat="error_inconsistency")
    assert gain.startswith("gain (points), accuracy-matched pairs (95% CI over images; over models and images): ")
    category, number = gain.split(": ", 1)[1].split(" ")[:2]
    matched = frame.filter(frame["matched"] & (frame["category"] == category))
    assert number == f"{100 * matched['gain'].mean():+.2f}"
    assert len(ei.split(": ", 1)[1].split(" ")[1].split(".")[1]) == 3


def test_tables_without_weak_models_leave_their_pairs_out():
    frame, draws = _study()
    strong = category_tables(frame, draws, _zoo(frame))["strong"]
    assert list(strong) == ["reinit", "framework"] and strong["framework"]["pairs"] == 1  # b+d and the a, c pairs with d go


def test_model_resample_weights_count_the_pairs_of_the_redrawn_zoo():
    """Against the slow, obvious reference: list the drawn models, enumerate pairs of draws of different models."""
    ia, ib = np.array([0, 0, 1, 2]), np.array([1, 2, 2, 3])
    got = model_resample_weights(ia, ib, 4, n_boot=50, seed=3)
    drawn = np.random.default_rng((3, 1)).integers(0, 4, size=(50, 4))
    for r, zoo in enumerate(drawn):
        counts = {}
        for i in range(4):
            for j in range(4):
                if i != j and zoo[i] < zoo[j]:
                    counts[zoo[i], zoo[j]] = counts.get((zoo[i], zoo[j]), 0) + 1
        assert got[r].tolist() == [counts.get((a, b), 0) for a, b in zip(ia, ib)]


def test_interval_over_a_zoo_that_is_never_redrawn_is_the_interval_over_images():
    frame, draws = _study()
    fixed = category_tables(frame, draws, _fixed_zoo(frame))["all"]["architecture"]
    assert (fixed["kappa_zoo_lo"], fixed["kappa_zoo_hi"]) == pytest.approx((fixed["kappa_lo"], fixed["kappa_hi"]))
    assert fixed["kappa_zoo_missing"] == 0 and fixed["models"] == 3


def test_a_gap_that_rests_on_one_model_holds_over_images_only():
    """architecture's two pairs disagree wildly (0.9 through model c, 0.1 through d): over these models its mean
    is clearly below reinit's, over models made this way it is not."""
    frame = pl.DataFrame({"model_a": ["a", "a", "a"], "model_b": ["b", "c", "d"],
                          "category": ["reinit", "architecture", "architecture"], "kappa": [0.6, 0.9, 0.1],
                          "matched": [False] * 3, "weak_pair": [False] * 3})
    draws = {"kappa": frame["kappa"].to_numpy()[:, None] + 0.001 * np.random.default_rng(0).normal(size=(3, N_BOOT))}
    zoo = _zoo(frame, seed=1)
    line = finding(frame, draws, zoo)
    assert "reinit 0.60 [" in line and "] ~ (only over images) architecture 0.50 [" in line
    assert "] > architecture" in finding(frame, draws, _fixed_zoo(frame))
    entry = category_tables(frame.with_columns(error_inconsistency=pl.lit(0.1), gain=pl.lit(0.0),
                                               cka_debiased=pl.lit(0.5), mutual_knn=pl.lit(0.2)),
                            draws | {"error_inconsistency": draws["kappa"], "gain": draws["kappa"]}, zoo)["all"]
    arch = entry["architecture"]
    assert arch["kappa_zoo_lo"] < 0.2 and arch["kappa_zoo_hi"] > 0.8 and 0 < arch["kappa_zoo_missing"] < 1


def test_headline_sentences_by_hand():
    """Matched pairs: reinit a+b (kappa 0.80, gain 0.001) against framework b+c (kappa 0.42, gain 0.01); with draws
    that do not vary, each interval is the difference itself: 0.80 - 0.42 = +0.38, and 1.00 - 0.10 = +0.90 points."""
    frame, draws = _study()
    exact = {stat: np.repeat(frame[stat].to_numpy()[:, None], N_BOOT, 1) for stat in draws}
    kappa, gain = headline(frame, exact, _fixed_zoo(frame))
    assert kappa.startswith("Models that differ in their training framework make fewer of the same mistakes than "
                            "models that differ in only their random seed")
    assert "is 0.42 for framework pairs against 0.80 for reinit pairs (accuracy-matched pairs), a difference of +0.38 " \
           "with 95% interval [+0.38, +0.38] over models and images, an interval that excludes zero" in kappa
    assert gain.startswith("Averaging the two models' probabilities gains +1.00 points of accuracy over the better one "
                           "for framework pairs and +0.10 points for reinit pairs: framework pairs gain +0.90 points more, "
                           "95% interval [+0.90, +0.90], an interval that excludes zero")
    one = frame.filter(pl.col("category") == "reinit")
    assert headline(one, {s: d[:2] for s, d in exact.items()}, _fixed_zoo(one)) == []


def test_headline_says_when_the_zoo_cannot_tell_the_categories_apart():
    """Over models and images the redrawn zoo decides: with two framework pairs resting on model b, the gain
    difference's interval spans zero."""
    frame, draws = _study()
    _, gain = headline(frame.with_columns(matched=pl.lit(False)), draws, _zoo(frame))
    assert gain.endswith("an interval that includes zero: this zoo cannot tell the two apart beyond these very models.")


def test_the_category_table_text_writes_gains_in_points():
    entry = {"pairs": 2, "models": 3, "kappa": 0.7, "kappa_lo": 0.6, "kappa_hi": 0.8, "kappa_zoo_lo": 0.5,
             "kappa_zoo_hi": 0.9, "error_inconsistency": 0.1, "error_inconsistency_lo": 0.05,
             "error_inconsistency_hi": 0.15, "gain": 0.0123, "gain_lo": -0.001, "gain_hi": 0.02}
    text = format_categories({"all": {"reinit": entry}})
    assert "gain (points)" in text
    assert "+1.23 [-0.10, +2.00; no zoo]" in text and "0.70 [0.60, 0.80; 0.50, 0.90]" in text
