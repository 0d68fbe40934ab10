"""zooscope.similarity.cka against explicit n x n Gram matrices, brute-force neighbours and invariants."""

import functools

import numpy as np
import pytest
from scipy.stats import ortho_group

from zooscope.similarity import (centred_gram, cka_pairs, cka_scores, knn_ids, linear_cka, linear_cka_debiased,
                                 mutual_knn, mutual_knn_pairs, mutual_knn_scores, permutation_null)
from zooscope.similarity.cka import _cka_pair
from zooscope.similarity.nulls import permutations, shuffled_pairs


def _pair(n=60, d1=8, d2=5, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1))
    return x, x @ rng.normal(size=(d1, d2)) + noise * rng.normal(size=(n, d2))


def _gram_cka(x, y):
    """Kornblith et al. 2019 eq. via centred n x n Gram matrices: HSIC(K, L) = tr(K H L H)."""
    n = len(x)
    h = np.eye(n) - 1 / n
    gram_x, gram_y = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h)

    return hsic(gram_x, gram_y) / np.sqrt(hsic(gram_x, gram_x) * hsic(gram_y, gram_y))


def _gram_hsic_unbiased(gram_x, gram_y):
    """Song et al. 2012 HSIC_1 written literally with n x n matrices."""
    n = len(gram_x)
    kt, lt = gram_x - np.diag(np.diag(gram_x)), gram_y - np.diag(np.diag(gram_y))
    one = np.ones(n)
    return (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ kt @ lt @ one) / (n * (n - 3))


def _gram_cka_debiased(x, y):
    gx, gy = x @ x.T, y @ y.T  # uncentred on purpose: HSIC_1 of linear kernels is translation invariant
    return _gram_hsic_unbiased(gx, gy) / np.sqrt(_gram_hsic_unbiased(gx, gx) * _gram_hsic_unbiased(gy, gy))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cka_matches_gram_matrix_form(seed):
    x, y = _pair(seed=seed)
    x, y = x + 3.0, y - 2.0  # an offset the functions must centre away
    assert linear_cka(x, y) == pytest.approx(_gram_cka(x, y), rel=1e-10)
    assert linear_cka_debiased(x, y) == pytest.approx(_gram_cka_debiased(x, y), rel=1e-9)


def test_debiased_cka_is_lower_for_unrelated_wide_features():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 40)), rng.normal(size=(50, 40))
    assert linear_cka(x, y) > 0.4  # the bias of the plain estimator at d close to n
    assert abs(linear_cka_debiased(x, y)) < 0.1


def test_cka_invariances():
    x, _ = _pair()
    q = ortho_group.rvs(x.shape[1], random_state=0)
    for fn in (linear_cka, linear_cka_debiased):
        assert fn(x, x @ q) == pytest.approx(1.0)
        assert fn(x, 3.5 * x) == pytest.approx(1.0)
        assert fn(x, x + 10.0) == pytest.approx(1.0)


def test_cka_rejects_misaligned_samples():
    with pytest.raises(ValueError, match="same samples"):
        linear_cka(np.ones((5, 2)), np.ones((6, 2)))
    with pytest.raises(ValueError, match="at least 4"):
        linear_cka_debiased(np.ones((3, 2)), np.ones((3, 2)))


def _brute_neighbours(z, k):
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1)[:, :k]


def _brute_mutual_knn(x, y, k):
    nx, ny = _brute_neighbours(x, k), _brute_neighbours(y, k)
    return np.mean([len(set(a) & set(b)) / k for a, b in zip(nx, ny, strict=True)])


def test_mutual_knn_matches_brute_force():
    x, y = _pair(n=200, noise=2.0)
    for k in (1, 5, 10):
        assert mutual_knn(x, y, k=k) == pytest.approx(_brute_mutual_knn(x, y, k))


def test_mutual_knn_invariants():
    x, _ = _pair(n=100)
    assert mutual_knn(x, x) == 1.0
    assert mutual_knn(x, 4.0 * x @ ortho_group.rvs(x.shape[1], random_state=1)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k must be"):
        mutual_knn(x, x, k=100)


def test_permutation_null():
    x, y = _pair(n=100, noise=0.5)
    mean, std, corrected = permutation_null(linear_cka, x, y, n_perm=20, seed=0)
    rng = np.random.default_rng(0)
    null = [linear_cka(x, y[rng.permutation(len(y))]) for _ in range(20)]
    assert (mean, std) == pytest.approx((np.mean(null), np.std(null, ddof=1)))
    assert corrected == pytest.approx(linear_cka(x, y) - mean)
    assert 0 < mean < linear_cka(x, y)
    assert permutation_null(linear_cka, x, y, seed=0) == (mean, std, corrected)

    knn = functools.partial(mutual_knn, k=5)
    knn_mean, _, knn_corrected = permutation_null(knn, x, y, n_perm=5)
    assert knn_mean < 0.2 < knn_corrected


def test_permutation_null_of_an_order_free_score_is_zero():
    x, y = _pair(n=30)
    _, std, corrected = permutation_null(lambda a, b: float(a.sum() + b.sum()), x, y, n_perm=5)
    assert std == pytest.approx(0, abs=1e-9) and corrected == pytest.approx(0, abs=1e-9)


def test_cka_scores_equal_the_generic_permutation_null():
    x, y = _pair(n=80, d1=12, d2=7, noise=0.7, seed=3)
    got = cka_scores(x, y, n_perm=20, seed=5)
    for name, fn in (("cka", linear_cka), ("cka_debiased", linear_cka_debiased)):
        mean, std, corrected = permutation_null(fn, x, y, n_perm=20, seed=5)
        assert got[name] == pytest.approx(fn(x, y), rel=1e-12)
        assert (got[f"{name}_null"], got[f"{name}_null_std"], got[f"{name}_corrected"]) == pytest.approx(
            (mean, std, corrected), rel=1e-9, abs=1e-12)
    assert got["cka_debiased_null"] == pytest.approx(0, abs=0.05)  # debiased: unrelated is near 0


def test_mutual_knn_scores_equal_the_generic_permutation_null():
    x, y = _pair(n=150, noise=1.5, seed=2)
    got = mutual_knn_scores(knn_ids(x, k=5), knn_ids(y, k=5), n_perm=20, seed=1)
    mean, std, corrected = permutation_null(functools.partial(mutual_knn, k=5), x, y, n_perm=20, seed=1)
    assert got["mutual_knn"] == mutual_knn(x, y, k=5)
    assert (got["mutual_knn_null"], got["mutual_knn_null_std"], got["mutual_knn_corrected"]) == pytest.approx(
        (mean, std, corrected), abs=1e-12)
    same = mutual_knn_scores(knn_ids(x, k=5), knn_ids(x, k=5), n_perm=3)
    assert same["mutual_knn"] == 1.0 and same["mutual_knn_null"] < 0.2


def test_cka_reproduces_the_published_demo_values():
    """Kornblith et al.'s CKA demo: numpy seed 1337, X = randn(100, 10), Y = randn(100, 10) + X gives linear CKA
    0.55761 and debiased (unbiased HSIC) CKA 0.51346."""
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    assert linear_cka(x, y) == pytest.approx(0.55761, abs=5e-6)
    assert linear_cka_debiased(x, y) == pytest.approx(0.51346, abs=5e-6)


def _zoo(n=70, widths=(6, 3, 9, 4), seed=4):
    """Embeddings of the same n samples by several models, partly sharing a signal, with offsets to centre away."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, 5))
    return [signal @ rng.normal(size=(5, d)) + rng.normal(size=(n, d)) + rng.normal(size=d) for d in widths]


#: pairs of the zoo's indices in no particular order; models 2 and 1 are the second of several pairs
ZOO_PAIRS = [(2, 0), (0, 1), (3, 1), (1, 2), (3, 2), (0, 3)]


def _null_fields(name, score, null):
    return {name: score, f"{name}_null": np.mean(null), f"{name}_null_std": np.std(null, ddof=1),
            f"{name}_corrected": score - np.mean(null)}


def test_centred_gram_summarises_the_explicit_gram_matrix():
    x = _zoo()[0]
    got = centred_gram(x)
    z = x - x.mean(0)
    gram = z @ z.T
    offdiag = gram - np.diag(np.diag(gram))
    np.testing.assert_allclose(got.z, z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.diag, np.diag(gram), rtol=1e-12)
    np.testing.assert_allclose(got.offdiag_rows, offdiag.sum(1), rtol=1e-10, atol=1e-10)
    assert got.offdiag_sum == pytest.approx(offdiag.sum(), rel=1e-10, abs=1e-9)
    assert got.norm == pytest.approx(np.sqrt((gram * gram).sum()), rel=1e-12)
    assert got.hsic1 == pytest.approx(_gram_hsic_unbiased(gram, gram), rel=1e-10)
    perm = np.random.default_rng(0).permutation(len(x))
    shuffled, direct = got.shuffled(perm), centred_gram(x[perm])
    for field in got._fields:
        np.testing.assert_allclose(getattr(shuffled, field), getattr(direct, field), rtol=1e-10, atol=1e-10)


def test_cka_pairs_equal_each_pair_scored_with_explicit_gram_matrices():
    zoo = _zoo()
    got = cka_pairs(zoo, ZOO_PAIRS, n_perm=7, seed=3)
    assert len(got) == len(ZOO_PAIRS)
    for (i, j), row in zip(ZOO_PAIRS, got, strict=True):
        x, y = zoo[i], zoo[j]
        rng = np.random.default_rng(3)
        perms = [rng.permutation(len(y)) for _ in range(7)]
        want = (_null_fields("cka", _gram_cka(x, y), [_gram_cka(x, y[p]) for p in perms])
                | _null_fields("cka_debiased", _gram_cka_debiased(x, y), [_gram_cka_debiased(x, y[p]) for p in perms]))
        assert row.keys() == want.keys()
        assert row == pytest.approx(want, rel=1e-8, abs=1e-12), (i, j)


def test_cka_pairs_refuse_embeddings_of_different_samples_flat_ones_and_pairs_outside_the_zoo():
    with pytest.raises(ValueError, match="same samples"):
        cka_pairs([np.ones((5, 2)), np.ones((6, 2))], [(0, 1)])
    with pytest.raises(ValueError, match=r"\[n_samples, d\]"):
        cka_pairs([np.ones((5, 2)), np.ones(5)], [(0, 1)])
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        cka_pairs([np.ones((5, 2)), np.ones((5, 2))], [(0, 2)])


def test_the_permutation_nulls_means_have_the_closed_forms_the_readme_gives():
    """Over every ordering of 7 samples: linear CKA's null mean is tr(K) tr(L) / ((n - 1) ||K||_F ||L||_F), and
    debiased CKA's is 0 (README, at ImageNet scale)."""
    from itertools import permutations

    x, y = _zoo(n=7, widths=(3, 4))
    a, b = centred_gram(x), centred_gram(y)
    every = np.array([_cka_pair(a, b.shuffled(np.array(p))) for p in permutations(range(7))])
    k, ell = (x - x.mean(0)) @ (x - x.mean(0)).T, (y - y.mean(0)) @ (y - y.mean(0)).T
    closed = np.trace(k) * np.trace(ell) / (6 * np.linalg.norm(k) * np.linalg.norm(ell))
    assert every[:, 0].mean() == pytest.approx(closed, rel=1e-12)
    assert every[:, 1].mean() == pytest.approx(0, abs=1e-14)


def test_cka_pairs_in_a_small_memory_give_the_same_numbers_and_hold_two_models_rows_at_most():
    """Groups of one model (a budget below two models' centred rows): every pair meets its two models alone, and
    the numbers are those of the whole zoo at once, bit for bit; the peak of what is allocated stays near two
    models' float64 rows (and a shuffled copy of one), against all eight models' rows without the bound."""
    import tracemalloc
    from itertools import combinations

    zoo, pairs = _zoo(n=3000, widths=(40,) * 8), list(combinations(range(8), 2))
    rows = 3000 * 40 * 8
    peaks, got = {}, {}
    for budget in (2 * rows - 1, 1 << 40):
        tracemalloc.start()
        got[budget] = cka_pairs(zoo, pairs, n_perm=2, seed=1, max_bytes=budget)
        peaks[budget] = tracemalloc.get_traced_memory()[1] / rows
        tracemalloc.stop()
    assert got[2 * rows - 1] == got[1 << 40]
    assert peaks[2 * rows - 1] < 4 < 8 < peaks[1 << 40], peaks


def test_mutual_knn_pairs_equal_brute_force_neighbours_of_the_shuffled_embeddings():
    zoo, k = _zoo(n=90), 6
    got = mutual_knn_pairs([knn_ids(x, k=k) for x in zoo], ZOO_PAIRS, n_perm=5, seed=2)
    for (i, j), row in zip(ZOO_PAIRS, got, strict=True):
        x, y = zoo[i], zoo[j]
        rng = np.random.default_rng(2)
        null = [_brute_mutual_knn(x, y[rng.permutation(len(y))], k) for _ in range(5)]
        assert row == pytest.approx(_null_fields("mutual_knn", _brute_mutual_knn(x, y, k), null), abs=1e-12), (i, j)


def test_mutual_knn_refuses_a_neighbour_list_with_an_id_twice():
    ids = np.array([[1, 2], [0, 2], [0, 0]])
    with pytest.raises(ValueError, match="twice"):
        mutual_knn_scores(ids, ids, n_perm=2)


def test_shuffled_pairs_shuffle_each_second_model_once_per_permutation():
    items = [np.arange(6.0) * (i + 1) for i in range(3)]
    shuffles = []

    def shuffle(item, perm):
        shuffles.append(item[0] + item[1])  # which item (item[1] is i + 1)
        return item[perm]

    def score(a, b):
        return float(a @ b)

    pairs = [(0, 1), (2, 1), (1, 0), (0, 2)]
    got = shuffled_pairs(items, pairs, score=score, shuffle=shuffle, n_samples=6, n_perm=4, seed=9)
    want = [[score(items[i], items[j][p]) for p in permutations(6, n_perm=4, seed=9)] for i, j in pairs]
    assert got == want
    assert sorted(shuffles) == sorted([1.0, 2.0, 3.0] * 4)  # items 1, 0 and 2, each once per permutation
