"""Our bounded Brent minimiser and log-softmax are SciPy's step for step: the same floats on many problems."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax as scipy_log_softmax

from zooscope.models.bounded import minimize_bounded
from zooscope.models.calibration import log_softmax, nll


def _scipy(func, lo, hi, xatol=1e-5, maxiter=500):
    return minimize_scalar(func, bounds=(lo, hi), method="bounded", options={"xatol": xatol, "maxiter": maxiter}).x


def _problems():
    rng = np.random.default_rng(0)
    yield "quadratic inside", lambda x: (x - 0.3) ** 2, -2.0, 3.0
    yield "minimum below the range", lambda x: (x + 5.0) ** 2, -2.0, 3.0
    yield "minimum above the range", lambda x: -x, -2.0, 3.0
    yield "flat", lambda x: 1.0, -1.0, 1.0
    yield "abs kink", lambda x: abs(x - 0.1234), -1.0, 1.0
    yield "two minima", lambda x: math.sin(3 * x) + 0.1 * x, -3.0, 3.0
    yield "zero-width range", lambda x: x * x, 0.5, 0.5
    for i in range(20):  # the predict stage's problem: NLL of temperature-scaled random logits over log T
        logits = rng.normal(size=(200, 10)) * rng.uniform(0.1, 30)
        labels = rng.integers(0, 10, 200)
        yield f"nll {i}", lambda t, z=logits, y=labels: nll(z, y, temperature=float(np.exp(t))), math.log(0.05), math.log(20)


@pytest.mark.parametrize("name,func,lo,hi", list(_problems()), ids=lambda v: v if isinstance(v, str) else "")
def test_same_minimiser_as_scipy(name, func, lo, hi):
    assert minimize_bounded(func, lo=lo, hi=hi) == _scipy(func, lo, hi)


def test_iteration_cap_and_tolerance_as_scipy():
    func = lambda x: (x - 1.0 / 3.0) ** 4  # noqa: E731 - slow to converge
    for xatol, maxiter in ((1e-12, 5), (1e-3, 500), (1e-9, 40)):
        assert minimize_bounded(func, lo=-4.0, hi=4.0, xatol=xatol, maxiter=maxiter) == _scipy(func, -4.0, 4.0, xatol, maxiter)


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="bounds"):
        minimize_bounded(lambda x: x, lo=1.0, hi=0.0)
    with pytest.raises(ValueError, match="bounds"):
        minimize_bounded(lambda x: x, lo=-math.inf, hi=0.0)


def test_log_softmax_is_scipys():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 7)) * 50
    x[0] = [np.inf, 1, 2, 3, 4, 5, 6]  # an infinite row maximum is shifted by 0, as SciPy does
    x[1] = -np.inf
    x[2, 3] = np.nan
    with np.errstate(invalid="ignore"):
        ours, theirs = log_softmax(x), scipy_log_softmax(x, axis=1)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.tobytes() == theirs.tobytes()
