"""zooscope.ensemble.partners: label-free pair features on hand-worked examples, and the leave-one-model-out
evaluation against an explicit loop (scikit-learn's Ridge on features standardised here, Spearman from ranks
computed here)."""

import itertools
import math

import numpy as np
import pytest

from zooscope.ensemble.partners import (DIRECTION, FEATURES, RIDGE_ALPHA, TOP_K, confidence_features, fit_ridge,
                                        held_out_predictions, partner_choice, ranking_quality, topk_overlap)


def test_topk_overlap_by_hand():
    # model 0 and 1 share {1, 2} of 3 classes on sample 0 and none on sample 1: (2/3 + 0) / 2; model 2 equals model 0
    # in another order on both samples
    top = np.array([[[0, 1, 2], [3, 4, 5]], [[2, 1, 9], [6, 7, 8]], [[2, 0, 1], [5, 3, 4]]])
    got = topk_overlap(top, np.array([[0, 1], [0, 2], [1, 2]]))
    assert got == pytest.approx([1 / 3, 1.0, (2 / 3 + 0) / 2])


def test_confidence_features_by_hand():
    got = confidence_features(np.array([0.9, 0.6, 0.75]), np.array([[0, 1], [1, 2], [0, 2]]))
    assert got["confidence_gap"] == pytest.approx([0.3, 0.15, 0.15])
    assert got["confidence_min"] == pytest.approx([0.6, 0.6, 0.75])


@pytest.mark.parametrize("bad", [np.array([[0, 3]]), np.array([[1, 1]]), np.array([0, 1]), np.array([[0.0, 1.0]])])
def test_pairs_are_checked(bad):
    with pytest.raises(ValueError, match="pairs must"):
        confidence_features(np.array([0.9, 0.6, 0.75]), bad)


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="top must be"):
        topk_overlap(np.zeros((2, 3), int), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="do not fit"):
        fit_ridge(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        fit_ridge(np.zeros((2, 2)), np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="do not fit"):
        held_out_predictions(np.zeros((2, 2)), np.zeros(3), np.array([[0, 1], [1, 2], [0, 2]]), n_models=3)


# ------------------------------------------------------------------ the leave-one-model-out evaluation, explicitly


def _ranks(values):
    """1-based ranks, ties at their mean rank: by counting, not sorting."""
    v = np.asarray(values, float)
    return np.array([np.sum(v < x) + (np.sum(v == x) + 1) / 2 for x in v])


def _spearman(x, y):
    rx, ry = _ranks(x), _ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _ridge_predict(x_train, y_train, x_test, alpha):
    """Impute with the training means, standardise by the training rows, fit scikit-learn's Ridge (its penalty is
    alpha * n on the sum of squares), predict."""
    from sklearn.linear_model import Ridge

    mean = np.array([np.mean(col[~np.isnan(col)]) if (~np.isnan(col)).any() else 0.0 for col in x_train.T])
    fill = lambda x: np.where(np.isnan(x), mean, x)  # noqa: E731
    std = fill(x_train).std(0)
    std[std == 0] = 1.0
    model = Ridge(alpha=alpha * len(y_train)).fit((fill(x_train) - mean) / std, y_train)
    return model.predict((fill(x_test) - mean) / std)


def _zoo(n_models, seed=0, missing=3):
    rng = np.random.default_rng(seed)
    pairs = np.array(list(itertools.combinations(range(n_models), 2)))
    x = rng.normal(size=(len(pairs), len(FEATURES)))
    gain = x @ rng.normal(size=len(FEATURES)) * 0.01 + 0.005 * rng.normal(size=len(pairs))
    x[rng.choice(len(pairs), missing, replace=False), 2] = np.nan  # CKA missing for a few pairs
    return pairs, x, gain


@pytest.mark.parametrize("n_models", [4, 7])
def test_held_out_predictions_equal_an_explicit_loop(n_models):
    pairs, x, gain = _zoo(n_models)
    got = held_out_predictions(x, gain, pairs, n_models=n_models)
    for m in range(n_models):
        train = [p for p, (a, b) in enumerate(pairs) if m not in (a, b)]
        for p, (a, b) in enumerate(pairs):
            if m in (a, b):
                want = _ridge_predict(x[train], gain[train], x[p:p + 1], RIDGE_ALPHA)[0]
                assert got[p, 0 if a == m else 1] == pytest.approx(want, abs=1e-12)


def test_ranking_quality_equals_an_explicit_loop():
    n_models = 7
    pairs, x, gain = _zoo(n_models, seed=1)
    held = held_out_predictions(x, gain, pairs, n_models=n_models)
    got = ranking_quality(held, gain, pairs, n_models=n_models)
    for m in range(n_models):
        partners, predicted, measured = [], [], []
        for p, (a, b) in enumerate(pairs):
            if m in (a, b):
                partners.append(b if a == m else a)
                predicted.append(held[p, 0 if a == m else 1])
                measured.append(gain[p])
        top = [partners[i] for i in sorted(range(len(partners)), key=lambda i: -predicted[i])[:TOP_K]]
        best = partners[int(np.argmax(measured))]
        assert got[m]["spearman"] == pytest.approx(_spearman(predicted, measured), abs=1e-12)
        assert got[m]["hit"] == (best in top) and got[m]["best"] == [best]
        assert got[m]["chance"] == pytest.approx(TOP_K / (n_models - 1))


def test_ties_in_the_measured_gain_count_every_best_partner():
    # model 0's partners 1, 2, 3, 4 with measured gains 0.01, 0.03, 0.03, 0.0 and scores ranking 4, 1, 3, 2:
    # the tied best partners are 2 and 3, the first of them in the predicted order is 3, at rank 3
    pairs = np.array([[0, 1], [0, 2], [0, 3], [0, 4]])
    score, gain = np.array([0.3, 0.1, 0.2, 0.4]), np.array([0.01, 0.03, 0.03, 0.0])
    got = ranking_quality(score, gain, pairs, n_models=5, k=2)[0]
    assert got["best"] == [2, 3] and got["order"] == [4, 1, 3, 2] and got["best_rank"] == 3 and not got["hit"]
    assert got["chance"] == pytest.approx(1 - 1 / 6)  # a random top 2 of 4 misses both only as {1, 4}: 1 of 6 sets
    assert got["spearman"] == pytest.approx(_spearman(score, gain))
    assert ranking_quality(score, gain, pairs, n_models=5, k=3)[0]["hit"]


def test_partner_choice_metrics_and_baselines():
    n_models = 6
    pairs, x, gain = _zoo(n_models, seed=2)
    rng = np.random.default_rng(3)
    top = np.stack([np.stack([rng.permutation(10)[:5] for _ in range(40)]) for _ in range(n_models)])
    confidence = rng.uniform(0.5, 1.0, n_models)
    table = {f: x[:, j] for j, f in enumerate(FEATURES) if f in ("disagreement", "cka_debiased", "mutual_knn")}
    models = [f"m{i}" for i in range(n_models)]
    got = partner_choice(models, pairs, table | {"gain": gain}, top=top, confidence=confidence)
    # the features as columns: computed here from the sets and confidences
    for p, (a, b) in enumerate(pairs):
        shared = np.mean([len(set(top[a, i]) & set(top[b, i])) / 5 for i in range(40)])
        assert got.columns["top5_overlap"][p] == pytest.approx(shared)
        assert got.columns["confidence_min"][p] == min(confidence[a], confidence[b])
    metrics = got.metrics
    assert metrics["missing"] == {f: (3 if f == "cka_debiased" else 0) for f in FEATURES}
    # the fit on all pairs equals scikit-learn's on the same standardised features
    features = np.column_stack([table[f] if f in table else got.columns[f] for f in FEATURES])
    fit = metrics["fit_all_pairs"]
    mine = fit["intercept"] + sum(fit["coef"][f] * (np.where(np.isnan(features[:, j]), fit["mean"][f], features[:, j])
                                                   - fit["mean"][f]) / fit["scale"][f] for j, f in enumerate(FEATURES))
    assert mine == pytest.approx(_ridge_predict(features, gain, features, RIDGE_ALPHA), abs=1e-12)
    # per model: the explicit Spearman of the held-out predictions; the summary their mean; the pooled rho over
    # every (model, partner) of the plot
    held = np.column_stack([got.columns["predicted_gain_a"], got.columns["predicted_gain_b"]])
    rho = []
    for m in range(n_models):
        rows = [(held[p, 0 if a == m else 1], gain[p]) for p, (a, b) in enumerate(pairs) if m in (a, b)]
        rho.append(_spearman(*zip(*rows)))
        assert metrics["models"][models[m]]["spearman"] == pytest.approx(rho[-1], abs=1e-12)
    assert metrics["summary"]["spearman_mean"] == pytest.approx(np.mean(rho))
    assert metrics["summary"]["hit_rate"] == np.mean([metrics["models"][m]["hit"] for m in models])
    assert metrics["summary"]["spearman_pooled"] == pytest.approx(_spearman(held.ravel(), np.repeat(gain, 2)))
    # a single-feature baseline ranks by the feature in its declared direction, missing values at the feature's mean
    j = FEATURES.index("cka_debiased")
    filled = np.where(np.isnan(x[:, j]), np.nanmean(x[:, j]), x[:, j])
    baseline = []
    for m in range(n_models):
        rows = [(DIRECTION["cka_debiased"] * filled[p], gain[p]) for p, (a, b) in enumerate(pairs) if m in (a, b)]
        baseline.append(_spearman(*zip(*rows)))
    assert metrics["baselines"]["cka_debiased"]["spearman_mean"] == pytest.approx(np.mean(baseline))


def test_spearman_equals_scipys_with_ties_and_is_undefined_for_a_constant():
    from scipy.stats import spearmanr

    from zooscope.ensemble.partners import spearman

    rng = np.random.default_rng(4)
    for _ in range(200):
        n = int(rng.integers(2, 10))
        x, y = rng.integers(0, 3, n).astype(float), rng.integers(0, 4, n).astype(float)
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert math.isnan(spearman(np.ones(4), np.arange(4.0))) and math.isnan(spearman(np.ones(1), np.ones(1)))
    assert math.isnan(spearman(np.array([0.0, np.nan, 1.0]), np.arange(3.0)))


def test_a_zoo_of_two_has_no_held_out_fit():
    held = held_out_predictions(np.ones((1, 2)), np.array([0.01]), np.array([[0, 1]]), n_models=2)
    assert np.isnan(held).all()


def test_ordered_partners_gives_each_model_its_own_held_out_prediction():
    import polars as pl

    from zooscope.ensemble.partners import ordered_partners

    pairs = pl.DataFrame({"model_a": ["x", "x", "y"], "model_b": ["y", "z", "z"], "category": ["reinit", "dataset", "framework"],
                          "gain": [0.01, 0.02, 0.03], "predicted_gain_a": [0.1, 0.2, 0.3], "predicted_gain_b": [0.4, 0.5, 0.6]}
                         | {f: [0.7, 0.8, 0.9] for f in FEATURES})
    z = ordered_partners(pairs, "z")  # z is model_b of both its pairs: its ranking is predicted_gain_b
    assert z.rows() == [("z", "x", "dataset", 0.5, 0.02, *[0.8] * 6), ("z", "y", "framework", 0.6, 0.03, *[0.9] * 6)]
    assert ordered_partners(pairs, "y")["predicted_gain"].to_list() == [0.3, 0.4]
    assert len(ordered_partners(pairs)) == 6
