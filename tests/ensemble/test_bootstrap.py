"""zooscope.ensemble.bootstrap: resample weights reproduce index draws; counts are exact integers."""

import numpy as np
import pytest

from zooscope.ensemble import bootstrap_weights, interval95, resampled_counts


def test_weights_count_the_drawn_indices():
    n, n_boot, seed, block = 37, 10, 3, 4
    weights = bootstrap_weights(n, n_boot=n_boot, seed=seed, block=block)
    assert weights.shape == (n_boot, n) and weights.dtype == np.uint8
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.integers(0, n, size=(min(block, n_boot - s), n)) for s in range(0, n_boot, block)])
    for row, drawn in zip(weights, idx, strict=True):
        np.testing.assert_array_equal(row, np.bincount(drawn, minlength=n))
    np.testing.assert_array_equal(weights.sum(1), n)
    np.testing.assert_array_equal(weights, bootstrap_weights(n, n_boot=n_boot, seed=seed, block=block))
    with pytest.raises(ValueError, match="positive"):
        bootstrap_weights(0, n_boot=5)


def test_resampled_counts_are_exact_and_add_up_over_sample_slices():
    rng = np.random.default_rng(0)
    weights = bootstrap_weights(500, n_boot=70, seed=1)
    indicators = rng.random((500, 3)) < 0.4
    expected = weights.astype(np.int64) @ indicators.astype(np.int64)
    got = resampled_counts(weights, indicators, block=16)
    np.testing.assert_array_equal(got, expected)
    halves = resampled_counts(weights[:, :200], indicators[:200]) + resampled_counts(weights[:, 200:], indicators[200:])
    np.testing.assert_array_equal(halves, expected)
    with pytest.raises(ValueError, match="do not fit"):
        resampled_counts(weights, indicators[:10])


def test_wide_slices_switch_to_float64_and_stay_exact():
    n = 70_000  # 255 * n > 2**24: float32 could round a partial sum
    weights = np.full((2, n), 255, np.uint8)
    got = resampled_counts(weights, np.ones((n, 1), bool))
    assert got[0, 0] == 255 * n


def test_interval95_is_the_percentile_interval():
    draws = np.arange(1001.0)
    assert interval95(draws) == (25.0, 975.0)
    lo, hi = interval95(np.stack([draws, 2 * draws]))
    np.testing.assert_array_equal(lo, [25.0, 50.0])
    np.testing.assert_array_equal(hi, [975.0, 1950.0])
