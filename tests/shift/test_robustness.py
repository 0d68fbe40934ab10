"""Effective robustness against a hand fit in probit space; corruption errors against a hand-worked example."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from zooscope.shift import corruption_errors, effective_robustness, probit


def test_effective_robustness_is_the_residual_from_a_probit_least_squares_line():
    clean = np.array([0.62, 0.70, 0.81, 0.88, 0.93])
    shifted = np.array([0.40, 0.52, 0.55, 0.71, 0.80])
    x, y = norm.ppf(clean), norm.ppf(shifted)
    design = np.stack([np.ones_like(x), x], 1)
    (intercept, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    got = effective_robustness(clean, shifted, n=1000)
    assert got["slope"] == pytest.approx(slope) and got["intercept"] == pytest.approx(intercept)
    np.testing.assert_allclose(got["effective"], shifted - norm.cdf(intercept + slope * x), atol=1e-12)


def test_models_on_a_probit_line_have_zero_effective_robustness():
    clean = np.array([0.6, 0.7, 0.8, 0.9])
    shifted = norm.cdf(-0.3 + 0.9 * norm.ppf(clean))
    got = effective_robustness(clean, shifted, n=10_000)
    np.testing.assert_allclose(got["effective"], 0.0, atol=1e-9)
    assert got["slope"] == pytest.approx(0.9) and got["intercept"] == pytest.approx(-0.3)


def test_the_line_is_fit_on_the_masked_models_and_every_model_gets_its_distance():
    """A compressed model (masked out) does not move the line; its residual is taken from the line of the others."""
    clean = np.array([0.62, 0.70, 0.81, 0.88, 0.93, 0.80])
    shifted = np.array([0.40, 0.52, 0.55, 0.71, 0.80, 0.30])
    fit = np.array([True, True, True, True, True, False])
    x, y = norm.ppf(clean), norm.ppf(shifted)
    (intercept, slope), *_ = np.linalg.lstsq(np.stack([np.ones(5), x[:5]], 1), y[:5], rcond=None)
    got = effective_robustness(clean, shifted, n=1000, fit_on=fit)
    assert got["slope"] == pytest.approx(slope) and got["intercept"] == pytest.approx(intercept)
    np.testing.assert_allclose(got["effective"], shifted - norm.cdf(intercept + slope * x), atol=1e-12)
    assert effective_robustness(clean, shifted, n=1000, fit_on=np.eye(6, dtype=bool)[0])["slope"] is None
    with pytest.raises(ValueError, match="mask of the 6 models"):
        effective_robustness(clean, shifted, n=1000, fit_on=fit[:5])


def test_the_line_is_undefined_without_two_distinct_clean_accuracies():
    got = effective_robustness(np.array([0.8, 0.8]), np.array([0.5, 0.6]), n=100)
    assert got["slope"] is None and np.isnan(got["effective"]).all()


def test_probit_keeps_perfect_and_null_accuracies_finite():
    assert np.isfinite(probit(np.array([0.0, 1.0]), n=50)).all()
    assert probit(np.array([1.0]), n=50)[0] == pytest.approx(norm.ppf(1 - 1 / 100))


def test_corruption_errors_by_hand():
    # two models, base first; sets: noise-1, noise-2, blur-1
    errors = np.array([[0.20, 0.40, 0.30],
                       [0.10, 0.30, 0.45]])
    clean = np.array([0.10, 0.05])
    got = corruption_errors(errors, clean, corruptions=["noise", "noise", "blur"], base=0)
    assert list(got["names"]) == ["noise", "blur"]
    # CE_noise = (0.1 + 0.3) / (0.2 + 0.4) = 2/3; CE_blur = 0.45 / 0.3 = 1.5
    np.testing.assert_allclose(got["ce"][1], [2 / 3, 1.5])
    np.testing.assert_allclose(got["mce"], [1.0, (2 / 3 + 1.5) / 2])
    # relative: noise (0.05 + 0.25) / (0.1 + 0.3) = 0.75; blur 0.4 / 0.2 = 2
    np.testing.assert_allclose(got["relative_ce"][1], [0.75, 2.0])
    np.testing.assert_allclose(got["relative_mce"], [1.0, 1.375])


def test_a_base_without_errors_leaves_the_ratio_undefined():
    got = corruption_errors(np.array([[0.0], [0.2]]), np.array([0.0, 0.1]), corruptions=["noise"], base=0)
    assert np.isnan(got["ce"]).all() and np.isnan(got["relative_mce"]).all()
