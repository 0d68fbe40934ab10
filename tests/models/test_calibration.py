"""zooscope.models.calibration against slow per-sample / per-bin references, a grid search and synthetic calibrated logits."""

import math

import numpy as np
import pytest

from zooscope.models import TEMPERATURE_BOUNDS, at_bound, ece, fit_temperature, nll, softmax, topk
from zooscope.models.calibration import reliability


def _logits(n=2000, c=7, seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=scale, size=(n, c)), rng.integers(0, c, n)


def _nll_loop(logits, labels, t=1.0):
    total = 0.0
    for row, y in zip(logits, labels):
        z = [v / t for v in row]
        m = max(z)
        log_norm = m + math.log(sum(math.exp(v - m) for v in z))
        total += log_norm - z[y]
    return total / len(labels)


def _ece_loop(probs, labels, bins):
    """Equal-width bins ((b-1)/bins, b/bins], one bin at a time, sample by sample."""
    n = len(labels)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i in range(n) if (lo < max(probs[i]) <= hi) or (b == 0 and max(probs[i]) <= lo)]
        if not members:
            continue
        acc = sum(int(np.argmax(probs[i]) == labels[i]) for i in members) / len(members)
        conf = sum(max(probs[i]) for i in members) / len(members)
        total += len(members) / n * abs(acc - conf)
    return total


def test_nll_matches_per_sample_loop():
    logits, labels = _logits(n=300)
    for t in (1.0, 0.5, 3.0):
        assert nll(logits, labels, temperature=t) == pytest.approx(_nll_loop(logits, labels, t), rel=1e-12)


def test_nll_hand_worked():
    # two equal logits: p = 1/2 -> nll = log 2; logits (log 3, 0): p(class 0) = 3/4
    logits = np.array([[0.0, 0.0], [math.log(3.0), 0.0]])
    assert nll(logits, np.array([1, 0])) == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, rel=1e-14)


def test_softmax_rows_sum_to_one_and_match_exp():
    logits, _ = _logits(n=50)
    p = softmax(logits, temperature=2.0)
    ref = np.exp(logits / 2.0) / np.exp(logits / 2.0).sum(1, keepdims=True)
    np.testing.assert_allclose(p, ref, rtol=1e-12)


@pytest.mark.parametrize("bins", [1, 5, 15, 33])
def test_ece_matches_per_bin_loop(bins):
    rng = np.random.default_rng(bins)
    probs = rng.dirichlet(np.full(5, 0.4), size=700)
    labels = np.where(rng.random(700) < 0.6, probs.argmax(1), rng.integers(0, 5, 700))
    assert ece(probs, labels, bins=bins) == pytest.approx(_ece_loop(probs, labels, bins), abs=1e-12)


def test_ece_hand_worked():
    # confidences 0.9 (right), 0.9 (wrong), 0.55 (right); 10 bins:
    # bin (0.8, 0.9]: acc 1/2, conf 0.9 -> 2/3 * 0.4; bin (0.5, 0.6]: acc 1, conf 0.55 -> 1/3 * 0.45
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.55, 0.45]])
    labels = np.array([0, 0, 0])
    assert ece(probs, labels, bins=10) == pytest.approx(2 / 3 * 0.4 + 1 / 3 * 0.45, abs=1e-12)
    assert ece(np.eye(3), np.arange(3), bins=15) == 0.0  # certain and right


@pytest.mark.parametrize("bins", [10, 15])
def test_ece_edge_confidence_belongs_to_lower_bin(bins):
    # a right answer at confidence exactly b / bins shares bin ((b-1)/bins, b/bins] with a wrong one just below
    for b in range(2, bins + 1):
        hi, below = b / bins, b / bins - 0.4 / bins
        probs = np.array([[hi, 1 - hi], [below, 1 - below]]) if hi > 0.5 else None
        if probs is None:
            continue
        labels = np.array([0, 1])
        expected = abs(0.5 - (hi + below) / 2)
        assert ece(probs, labels, bins=bins) == pytest.approx(expected, abs=1e-12), b
        assert _ece_loop(probs, labels, bins) == pytest.approx(expected, abs=1e-12), b


def test_fit_temperature_matches_dense_grid():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(1500, 6))
    # labels from softmax(logits / 1.7), plus noise: the optimum is away from 1
    p = softmax(logits, temperature=1.7)
    labels = np.array([rng.choice(6, p=row) for row in p])
    t = fit_temperature(logits, labels)
    coarse = np.linspace(np.log(0.05), np.log(20.0), 601)  # log T, over fit_temperature's bounds
    c_best = coarse[np.argmin([nll(logits, labels, temperature=np.exp(g)) for g in coarse])]
    step = coarse[1] - coarse[0]
    grid = np.exp(np.linspace(c_best - step, c_best + step, 401))  # then a dense grid around the coarse best
    losses = np.array([nll(logits, labels, temperature=g) for g in grid])
    best = grid[losses.argmin()]
    assert abs(np.log(t) - np.log(best)) <= np.log(grid[1]) - np.log(grid[0])
    assert nll(logits, labels, temperature=t) <= losses.min() + 1e-9
    assert 1.3 < t < 2.2


def test_fit_temperature_recovers_calibration():
    rng = np.random.default_rng(7)
    n, c = 50_000, 10
    logits = rng.normal(scale=2.5, size=(n, c))
    p = softmax(logits)
    labels = (p.cumsum(1) > rng.random(n)[:, None]).argmax(1)  # one draw from each row's softmax
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.03)
    # the same labels against logits scaled by 3: the fitted temperature undoes the scale
    assert fit_temperature(3.0 * logits, labels) == pytest.approx(3.0, rel=0.03)


def test_fit_temperature_validates_shapes():
    with pytest.raises(ValueError, match="labels"):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1, 2]))
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((3, 2)), np.array([0, 1]))


def test_topk_matches_argsort():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(200, 12))
    ref = np.argsort(-scores, axis=1)
    for k in (1, 3, 12):
        got = topk(scores, k=k)
        assert got.dtype == np.int64 and got.shape == (200, k)
        np.testing.assert_array_equal(got, ref[:, :k])
    np.testing.assert_array_equal(topk(scores, k=50), ref)  # k beyond the classes: all, ordered


def test_topk_accuracy_hand_worked():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    np.testing.assert_array_equal(topk(scores, k=2), [[1, 2], [0, 1]])


def test_topk_breaks_ties_to_the_lower_class_like_argmax():
    scores = np.array([[0.2, 0.4, 0.4, 0.0], [0.25, 0.25, 0.25, 0.25], [0.1, 0.3, 0.3, 0.3]])
    top = topk(scores, k=3)
    assert top.tolist() == [[1, 2, 0], [0, 1, 2], [1, 2, 3]]
    np.testing.assert_array_equal(top[:, 0], scores.argmax(1))


def test_a_temperature_on_its_search_bound_is_reported():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    informative = np.eye(3)[labels] * 2 + rng.normal(size=(200, 3))
    assert not at_bound(fit_temperature(informative, labels))
    constant = np.tile([[5.0, 0.0, 0.0]], (200, 1))  # says class 0 for everything: no temperature fits
    t = fit_temperature(constant, labels)
    assert at_bound(t) and t == pytest.approx(TEMPERATURE_BOUNDS[1], rel=1e-3)


def test_reliability_bins_hand_worked():
    # confidences 0.9 (right), 0.8 (wrong), 0.4 (right), 0.45 (right) in 5 bins of width 0.2:
    # (0.2, 0.4] holds 0.4; (0.4, 0.6] holds 0.45; (0.8, 1.0] holds 0.9; (0.6, 0.8] holds 0.8
    probs = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.4, 0.3, 0.3], [0.3, 0.25, 0.45]])
    labels = np.array([0, 0, 0, 2])
    count, right, conf = reliability(probs, labels, bins=5)
    np.testing.assert_array_equal(count, [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(right, [0, 1, 1, 0, 1])
    np.testing.assert_allclose(conf, [0, 0.4, 0.45, 0.8, 0.9])
    # ECE of the same bins: (|1 - 0.4| + |1 - 0.45| + |0 - 0.8| + |1 - 0.9|) / 4
    assert ece(probs, labels, bins=5) == pytest.approx((0.6 + 0.55 + 0.8 + 0.1) / 4)
