"""zooscope.models.probe against scikit-learn's logistic regression; zooscope.models.knn against brute-force numpy."""

import numpy as np
import pytest

from zooscope.models import knn_classify, l2_normalize, search
from zooscope.models import fit_logistic, fit_probe, knn_accuracy


def _blobs(n=300, d=5, c=3, seed=0, spread=1.0, priors=None):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(c, d)) * 1.5
    y = rng.choice(c, size=n, p=priors)
    x = centers[y] + spread * rng.normal(size=(n, d)) + 4.0  # offset: standardisation matters
    return x, y


def _standardise(x, ref):
    return (x - ref.mean(0)) / ref.std(0)


def _softmax(s):
    e = np.exp(s - s.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# --------------------------------------------------------------------------- probe


@pytest.mark.parametrize("l2", [1e-1, 1e-2, 1e-3])
def test_fit_logistic_matches_sklearn(l2):
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs()
    n, d, c = len(x), x.shape[1], 3
    z = _standardise(x, x).astype(np.float32)
    params = fit_logistic(z, y, num_classes=c, l2=l2, max_iter=2000, tol=1e-12)
    assert params.shape == (d * c + c,)
    w, b = params[: d * c].reshape(d, c), params[d * c:]
    # sklearn: C * sum CE + ||W||^2 / 2  ==  n C (mean CE + ||W||^2 / (2 n C)): the same optimum for C = 1 / (n l2)
    ref = LogisticRegression(C=1.0 / (n * l2), fit_intercept=True, tol=1e-12, max_iter=10_000).fit(
        z.astype(np.float64), y)
    np.testing.assert_allclose(w, ref.coef_.T, atol=2e-3)
    # the intercept is unpenalised, so only its differences between classes are identified
    np.testing.assert_allclose(b - b.mean(), ref.intercept_ - ref.intercept_.mean(), atol=2e-3)
    np.testing.assert_allclose(_softmax(z @ w + b), ref.predict_proba(z.astype(np.float64)), atol=1e-3)
    # at the optimum, the penalty makes W's columns sum to zero (softmax is shift invariant)
    np.testing.assert_allclose(w.sum(1), 0.0, atol=1e-3)


def test_fit_logistic_stationary_point():
    x, y = _blobs(n=200, d=4, c=4, seed=1)
    z = _standardise(x, x).astype(np.float32)
    l2, c = 0.05, 4
    params = fit_logistic(z, y, num_classes=c, l2=l2, max_iter=2000, tol=1e-12)
    w, b = params[:16].reshape(4, c), params[16:]
    # gradient of mean CE + l2/2 ||W||^2, computed in float64 by hand
    resid = _softmax(z.astype(np.float64) @ w + b)
    resid[np.arange(len(y)), y] -= 1.0
    grad_w = z.T.astype(np.float64) @ resid / len(y) + l2 * w
    grad_b = resid.mean(0)
    assert np.abs(grad_w).max() < 1e-3 and np.abs(grad_b).max() < 1e-3


def test_fit_probe_standardises_with_train_statistics():
    x, y = _blobs(n=120, d=4, seed=2)
    x[:, 2] = 7.0  # a constant feature: its scale falls back to 1
    probe = fit_probe(x, y, x, y, num_classes=3, l2_grid=(1e-2,))
    np.testing.assert_allclose(probe.mean, x.mean(0))
    expected_scale = x.std(0)
    expected_scale[2] = 1.0
    np.testing.assert_allclose(probe.scale, expected_scale)
    logits = probe.logits(x)
    assert logits.dtype == np.float32 and logits.shape == (120, 3)
    np.testing.assert_allclose(logits, ((x - probe.mean) / probe.scale) @ probe.weight + probe.bias, rtol=1e-5, atol=1e-5)


def test_fit_probe_picks_best_selection_accuracy():
    from sklearn.linear_model import LogisticRegression

    # imbalanced classes: a huge penalty shrinks W until the bias (log prior) predicts class 0 everywhere
    priors = [0.6, 0.25, 0.15]
    x, y = _blobs(n=600, d=6, c=3, seed=3, spread=1.2, priors=priors)
    tx, ty, sx, sy = x[:400], y[:400], x[400:], y[400:]
    grid = (1e-3, 30.0, 1e-1)  # deliberately unsorted
    probe = fit_probe(tx, ty, sx, sy, num_classes=3, l2_grid=grid, max_iter=500, tol=1e-12)
    assert set(probe.selection) == set(grid)

    # each grid value's selection accuracy, from an independent sklearn fit
    z, zs = _standardise(tx, tx), _standardise(sx, tx)
    m = len(sy)
    for l2 in grid:
        ref = LogisticRegression(C=1.0 / (len(ty) * l2), tol=1e-10, max_iter=10_000).fit(z, ty)
        assert probe.selection[l2] == pytest.approx(float((ref.predict(zs) == sy).mean()), abs=1.5 / m), l2
    assert probe.selection[30.0] == pytest.approx(float((sy == 0).mean()), abs=1.5 / m)  # the prior only

    best = max(probe.selection.values())
    assert probe.selection[probe.l2] == best
    assert probe.selection[30.0] < best - 0.1
    # the returned weights are the chosen fit's: its accuracy is the recorded one
    assert float((probe.logits(sx).argmax(1) == sy).mean()) == pytest.approx(probe.selection[probe.l2], abs=1.5 / m)


def test_fit_probe_tie_keeps_the_stronger_penalty():
    # separable blobs: both penalties classify the selection split perfectly
    x, y = _blobs(n=200, d=3, c=2, seed=4, spread=0.05)
    probe = fit_probe(x[:150], y[:150], x[150:], y[150:], num_classes=2, l2_grid=(1e-3, 1e-2))
    assert probe.selection == {1e-3: 1.0, 1e-2: 1.0}
    assert probe.l2 == 1e-2


def test_fit_probe_shape_check():
    with pytest.raises(ValueError, match="train_x"):
        fit_probe(np.zeros((5, 2)), np.zeros(4, int), np.zeros((2, 2)), np.zeros(2, int), num_classes=2,
                  l2_grid=(1.0,))


# --------------------------------------------------------------------------- knn


def _brute_topk(db, q, k, exclude_self=False):
    sims = q.astype(np.float64) @ db.astype(np.float64).T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, 1), order


def test_l2_normalize():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
    got = l2_normalize(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]], rtol=1e-7)


@pytest.mark.parametrize("block", [8192, 7])
def test_search_matches_brute_force(block):
    rng = np.random.default_rng(5)
    db, q = rng.normal(size=(150, 8)), rng.normal(size=(40, 8))
    scores, ids = search(db, q, k=6, block=block, use_gpu=False)
    ref_s, ref_i = _brute_topk(db, q, 6)
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and ids.shape == (40, 6)
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("block", [8192, 16])
def test_search_exclude_self_matches_brute_force(block):
    rng = np.random.default_rng(6)
    # unnormalised rows: a row's own inner product is often NOT its best match
    db = rng.normal(size=(100, 5)) * rng.uniform(0.2, 3.0, size=(100, 1))
    scores, ids = search(db, db, k=7, exclude_self=True, block=block, use_gpu=False)
    ref_s, ref_i = _brute_topk(db, db, 7, exclude_self=True)
    assert not (ids == np.arange(100)[:, None]).any()
    np.testing.assert_array_equal(ids, ref_i)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-5, atol=1e-5)


def test_search_exclude_self_with_duplicate_rows():
    rng = np.random.default_rng(7)
    base = l2_normalize(rng.normal(size=(10, 4)))
    db = np.concatenate([base, base, base])  # every row has two exact copies: ties with itself
    _, ids = search(db, db, k=2, exclude_self=True, use_gpu=False)
    own = np.arange(30)
    assert not (ids == own[:, None]).any()
    # the two neighbours are the row's copies
    np.testing.assert_array_equal(np.sort(ids % 10, axis=1), np.stack([own % 10, own % 10], 1))


def test_search_errors():
    db = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="4 rows"):
        search(db, db, k=4, exclude_self=True, use_gpu=False)
    with pytest.raises(ValueError, match="equal widths"):
        search(db, np.zeros((2, 2)), k=1, use_gpu=False)


def _brute_knn_vote(train, train_y, queries, k, num_classes):
    """Cosine top-k, majority vote; among classes with the top count, the one holding the nearest neighbour."""
    tn = train / np.linalg.norm(train, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    _, order = _brute_topk(tn, qn, k)
    pred = []
    for row in order:
        counts = np.zeros(num_classes, int)
        for j in row:
            counts[train_y[j]] += 1
        pred.append(next(train_y[j] for j in row if counts[train_y[j]] == counts.max()))
    return np.array(pred)


@pytest.mark.parametrize("k", [1, 4, 5])
def test_knn_classify_matches_brute_force_vote(k):
    rng = np.random.default_rng(8 + k)
    train, train_y = rng.normal(size=(300, 6)), rng.integers(0, 4, 300)
    queries = rng.normal(size=(200, 6))
    got = knn_classify(train, train_y, queries, k=k, num_classes=4)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, _brute_knn_vote(train, train_y, queries, k, 4))


def test_knn_classify_exact_tie_goes_to_nearest_neighbour():
    angles = np.array([0.0, 0.1, 0.2, 0.3, 1.5])
    train = np.stack([np.cos(angles), np.sin(angles)], 1)
    train_y = np.array([1, 0, 0, 1, 0])
    assert knn_classify(train, train_y, np.array([[1.0, 0.0]]), k=4, num_classes=2)[0] == 1


def test_knn_accuracy_matches_brute_force():
    x, y = _blobs(n=400, d=5, c=3, seed=9, spread=2.0)
    acc = knn_accuracy(x[:300], y[:300], x[300:], y[300:], k=7, num_classes=3)  # odd k, 3 classes: rare ties
    ref = _brute_knn_vote(x[:300], y[:300], x[300:], 7, 3)
    assert acc == pytest.approx(float((ref == y[300:]).mean()), abs=1e-12)
    assert 0.4 < acc < 1.0
