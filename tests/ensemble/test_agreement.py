"""zooscope.ensemble.agreement against slow per-sample references and invariants."""

import numpy as np
import pytest

from zooscope.ensemble import (all_pairs_agreement, all_pairs_disagreement, bootstrap_pair, bootstrap_statistics,
                               class_specialisation, disagreement, ensemble_curve, error_consistency, greedy_ensemble,
                               image_split,
                               pair_ensemble)

KEYS = ("error_inconsistency", "c_obs", "c_exp", "kappa", "kappa_max", "kappa_ratio", "kappa_min", "kappa_position",
        "error_corr")


def _zoo(n_models=6, n=400, num_classes=5, seed=0):
    """Probabilities of models that share a per-sample difficulty, so their errors correlate."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    difficulty = rng.normal(size=n)
    probs = []
    for m in range(n_models):
        logits = rng.normal(size=(n, num_classes))
        logits[np.arange(n), labels] += 1.0 + 0.3 * m - difficulty
        p = np.exp(logits)
        probs.append(p / p.sum(1, keepdims=True))
    return np.stack(probs), labels


def _kappa_from_table(a, b):
    """Cohen's kappa, kappa_max and EI from the explicit 2x2 contingency table, sample by sample."""
    table = np.zeros((2, 2))
    for x, y in zip(a, b, strict=True):
        table[int(x), int(y)] += 1
    n = table.sum()
    c_obs = (table[0, 0] + table[1, 1]) / n
    p_a, p_b = table[1].sum() / n, table[:, 1].sum() / n
    c_exp = p_a * p_b + (1 - p_a) * (1 - p_b)
    kappa = 1.0 if c_obs == 1 == c_exp else (c_obs - c_exp) / (1 - c_exp)
    kappa_max = 1.0 if c_exp == 1 else (1 - abs(p_a - p_b) - c_exp) / (1 - c_exp)
    return {"kappa": kappa, "kappa_max": kappa_max, "error_inconsistency": 1 - c_obs, "c_obs": c_obs, "c_exp": c_exp}


def test_error_consistency_matches_contingency_table():
    probs, labels = _zoo()
    correct = probs.argmax(2) == labels
    for i, j in [(0, 1), (2, 5), (3, 3)]:
        got = error_consistency(correct[i], correct[j])
        ref = _kappa_from_table(correct[i], correct[j])
        for key, value in ref.items():
            assert got[key] == pytest.approx(value, abs=1e-12), key
        assert got["kappa_ratio"] == pytest.approx(ref["kappa"] / ref["kappa_max"])
        assert got["error_corr"] == pytest.approx(np.corrcoef(~correct[i], ~correct[j])[0, 1])
        assert got["kappa"] <= got["kappa_max"] + 1e-12


def test_kappa_of_a_model_with_itself_is_one():
    correct = np.random.default_rng(1).random(300) < 0.7
    got = error_consistency(correct, correct)
    assert got["kappa"] == 1.0 and got["error_inconsistency"] == 0.0 and got["error_corr"] == pytest.approx(1.0)


def test_degenerate_pairs():
    right = np.ones(50, bool)
    assert error_consistency(right, right)["kappa"] == 1.0  # c_obs == 1 == c_exp
    some = np.arange(50) % 3 == 0
    got = error_consistency(right, some)
    assert got["kappa"] == 0.0 and got["kappa_max"] == 0.0
    assert np.isnan(got["kappa_ratio"]) and np.isnan(got["error_corr"])


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="correct_b"):
        error_consistency(np.ones(5, bool), np.ones(6, bool))
    with pytest.raises(ValueError, match="correct_a"):
        error_consistency(np.array([0, 2, 1]), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="logits_b"):
        pair_ensemble(np.eye(3), np.eye(3), np.arange(3), logits_a=np.eye(3))
    with pytest.raises(ValueError, match="probs_b"):
        pair_ensemble(np.eye(3), np.eye(4)[:3], np.arange(3))


def test_disagreement_counts_both_wrong_differently():
    labels = np.array([0, 1, 2, 3])
    pred_a, pred_b = np.array([0, 1, 0, 3]), np.array([0, 2, 1, 3])
    assert disagreement(pred_a, pred_b) == 0.5
    assert disagreement(labels, labels) == 0.0


def test_pair_ensemble_matches_per_sample_reference():
    probs, labels = _zoo()
    logits_a, logits_b = np.log(probs[0]), np.log(probs[3])
    got = pair_ensemble(probs[0], probs[3], labels, logits_a=logits_a, logits_b=logits_b)
    right_a = right_b = right_ens = right_log = converted = one_right = 0
    for i, y in enumerate(labels):
        a, b = probs[0, i].argmax() == y, probs[3, i].argmax() == y
        ens = ((probs[0, i] + probs[3, i]) / 2).argmax() == y
        right_a, right_b, right_ens = right_a + a, right_b + b, right_ens + ens
        right_log += ((logits_a[i] + logits_b[i]) / 2).argmax() == y
        if a != b:
            one_right += 1
            converted += ens
    n = len(labels)
    assert got["acc_a"] == right_a / n and got["acc_b"] == right_b / n
    assert got["acc_ensemble"] == right_ens / n and got["acc_ensemble_logits"] == right_log / n
    assert got["gain"] == pytest.approx(right_ens / n - max(right_a, right_b) / n)
    assert got["conversion_rate"] == pytest.approx(converted / one_right)


def test_ensemble_of_identical_models_is_the_model():
    probs, labels = _zoo()
    got = pair_ensemble(probs[2], probs[2], labels)
    assert got["acc_ensemble"] == got["acc_a"] and got["gain"] == 0.0
    assert np.isnan(got["conversion_rate"])  # no sample has exactly one member right


def test_bootstrap_matches_a_loop_over_resamples():
    probs, labels = _zoo()
    a, b = probs[0].argmax(1) == labels, probs[4].argmax(1) == labels
    ens = (probs[0] + probs[4]).argmax(1) == labels
    n_boot = 200
    got = bootstrap_pair(a, b, ens, n_boot=n_boot, seed=3, block=n_boot)  # one block: one index matrix
    idx = np.random.default_rng(3).integers(0, len(a), size=(n_boot, len(a)))
    draws = {"kappa": [], "error_inconsistency": [], "gain": []}
    for row in idx:
        ref = _kappa_from_table(a[row], b[row])
        draws["kappa"].append(ref["kappa"])
        draws["error_inconsistency"].append(ref["error_inconsistency"])
        draws["gain"].append(ens[row].mean() - max(a[row].mean(), b[row].mean()))
    for key, values in draws.items():
        assert got[key] == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])), abs=1e-12), key


def test_bootstrap_contains_point_estimate_and_is_reproducible():
    probs, labels = _zoo(n=1000)
    a, b = probs[1].argmax(1) == labels, probs[2].argmax(1) == labels
    ens = (probs[1] + probs[2]).argmax(1) == labels
    first = bootstrap_pair(a, b, ens, n_boot=1000, seed=7)
    assert first == bootstrap_pair(a, b, ens, n_boot=1000, seed=7)
    assert first != bootstrap_pair(a, b, ens, n_boot=1000, seed=8)
    point = error_consistency(a, b) | pair_ensemble(probs[1], probs[2], labels)
    for key in ("kappa", "error_inconsistency", "gain"):
        lo, hi = first[key]
        assert lo <= point[key] <= hi, key


def test_all_pairs_equal_the_pairwise_functions():
    probs, labels = _zoo(n_models=5, n=300)
    preds = probs.argmax(2)
    correct = preds == labels
    correct[4] = True  # a perfect model exercises the degenerate entries
    agreement = all_pairs_agreement(correct, block=128)
    differ = all_pairs_disagreement(preds, block=64)
    for i in range(len(correct)):
        for j in range(len(correct)):
            pair = error_consistency(correct[i], correct[j])
            for key in KEYS:
                np.testing.assert_equal(agreement[key][i, j], pair[key], err_msg=f"{key}[{i}, {j}]")
            assert differ[i, j] == disagreement(preds[i], preds[j])


def test_class_specialisation_matches_per_class_loop():
    probs, labels = _zoo(num_classes=6)
    labels[labels == 5] = 4  # class 5 has no samples
    got = class_specialisation(probs[0], probs[5], labels, num_classes=6)
    for c in range(6):
        mask = labels == c
        assert got["support"][c] == mask.sum()
        if not mask.any():
            assert np.isnan(got["acc_a"][c]) and np.isnan(got["acc_ensemble"][c])
            continue
        assert got["acc_a"][c] == pytest.approx(np.mean(probs[0][mask].argmax(1) == c))
        assert got["acc_b"][c] == pytest.approx(np.mean(probs[5][mask].argmax(1) == c))
        assert got["acc_ensemble"][c] == pytest.approx(np.mean((probs[0][mask] + probs[5][mask]).argmax(1) == c))
    theta = [np.arctan2(probs[0, i, y], probs[5, i, y]) for i, y in enumerate(labels)]
    assert got["theta_mean"] == pytest.approx(np.mean(theta)) and got["theta_std"] == pytest.approx(np.std(theta))
    same = class_specialisation(probs[0], probs[0], labels, num_classes=6)
    assert same["theta_mean"] == pytest.approx(np.pi / 4) and same["theta_std"] == pytest.approx(0, abs=1e-12)


def _greedy_reference(probs, labels, max_size):
    """Forward selection by trying every unused model against the explicit mean of the chosen ones."""
    order, curve = [], []
    for _ in range(max_size):
        unused = [m for m in range(len(probs)) if m not in order]
        scores = {m: np.mean(probs[[*order, m]].mean(0).argmax(1) == labels) for m in unused}
        best = max(scores, key=lambda m: (scores[m], -m))
        order.append(best)
        curve.append(scores[best])
    return order, curve


def test_greedy_ensemble_matches_reference_for_arrays_memmaps_and_loaders(tmp_path):
    probs, labels = _zoo(n_models=6)
    order, curve = _greedy_reference(probs, labels, 4)
    paths = []
    for m, p in enumerate(probs):
        paths.append(tmp_path / f"{m}.npy")
        np.save(paths[-1], p.astype(np.float32))
    memmaps = [np.load(path, mmap_mode="r") for path in paths]
    for source, n_models in ((list(probs), None), (memmaps, None), (lambda m: np.load(paths[m], mmap_mode="r"), 6)):
        got = greedy_ensemble(source, labels, max_size=4, n_models=n_models)
        assert got["order"].tolist() == order
        np.testing.assert_allclose(got["accuracy"], curve)
    assert curve[0] == max(np.mean(p.argmax(1) == labels) for p in probs)


def test_greedy_ensemble_checks_arguments():
    probs, labels = _zoo(n_models=3)
    with pytest.raises(ValueError, match="max_size"):
        greedy_ensemble(list(probs), labels, max_size=4)
    with pytest.raises(ValueError, match="n_models"):
        greedy_ensemble(lambda m: probs[m], labels, max_size=2)


def test_kappa_of_independent_predictors_is_near_zero_inside_its_interval():
    rng = np.random.default_rng(11)
    a, b = rng.random(5000) < 0.7, rng.random(5000) < 0.6  # independent errors
    ens = a & b
    kappa = error_consistency(a, b)["kappa"]
    lo, hi = bootstrap_pair(a, b, ens, n_boot=1000, seed=0)["kappa"]
    assert abs(kappa) < 0.05 and lo < 0 < hi


def test_bootstrap_statistics_broadcast_over_pairs():
    n_a, n_b, n_ab, n_ens = (np.array([[60, 70], [50, 50]]), np.array([[40, 45], [50, 50]]),
                             np.array([[30, 35], [50, 50]]), np.array([[65, 72], [50, 50]]))
    got = bootstrap_statistics(n_a, n_b, n_ab, n_ens, 100)
    for p in range(2):
        for r in range(2):
            ref = _kappa_from_table(*_table_vectors(n_a[p, r], n_b[p, r], n_ab[p, r], 100))
            assert got["kappa"][p, r] == pytest.approx(ref["kappa"])
            assert got["error_inconsistency"][p, r] == pytest.approx(ref["error_inconsistency"])
            assert got["gain"][p, r] == pytest.approx((n_ens[p, r] - max(n_a[p, r], n_b[p, r])) / 100)
    assert got["kappa"][1, 0] == 1.0  # identical predictors


def _table_vectors(n_a, n_b, n_ab, n):
    """Correctness vectors with the given counts (n_ab both right, then a only, then b only)."""
    a, b = np.zeros(n, bool), np.zeros(n, bool)
    a[:n_ab] = b[:n_ab] = True
    a[n_ab:n_a] = True
    b[n_a:n_a + n_b - n_ab] = True
    return a, b


def test_greedy_ensemble_is_exact_under_ties():
    probs, labels = _zoo(n_models=5, n=500)
    probs = np.floor(probs * 4) / 4  # quarters: many exact ties between classes
    order, curve, total = [], [], np.zeros(probs.shape[1:])
    for _ in range(4):  # brute force: the full argmax of every candidate sum
        scores = {m: np.mean((total + probs[m]).argmax(1) == labels) for m in range(5) if m not in order}
        best = max(scores, key=lambda m: (scores[m], -m))
        order.append(best)
        curve.append(scores[best])
        total = total + probs[best]
    got = greedy_ensemble(list(probs.astype(np.float32)), labels, max_size=4)
    assert got["order"].tolist() == order and got["accuracy"].tolist() == curve


def test_ensemble_curve_of_a_fixed_order_against_the_mean_probabilities():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, 300)
    probs = [rng.dirichlet(np.ones(4), 300).astype(np.float32) for _ in range(5)]
    order = [3, 0, 4]
    want = [float((np.mean([probs[m] for m in order[:k]], axis=0).argmax(1) == labels).mean()) for k in (1, 2, 3)]
    np.testing.assert_allclose(ensemble_curve(probs, labels, order), want)
    # on the split the order was chosen on, the curve is greedy_ensemble's own accuracy
    greedy = greedy_ensemble(probs, labels, max_size=4)
    np.testing.assert_array_equal(ensemble_curve(lambda m: probs[m], labels, greedy["order"]), greedy["accuracy"])


def test_kappa_bounds_against_published_and_hand_worked_values():
    """Geirhos et al. (2020): kappa_max for accuracies 0.8 and 0.6 is 0.5455; kappa_min by hand from
    c_obs_min = |0.8 + 0.6 - 1| = 0.4 and c_exp = 0.56: (0.4 - 0.56) / 0.44 = -0.3636."""
    a = np.r_[np.ones(80, bool), np.zeros(20, bool)]
    nested, disjoint = np.r_[np.ones(60, bool), np.zeros(40, bool)], np.r_[np.zeros(40, bool), np.ones(60, bool)]
    for b, position in ((nested, 1.0), (disjoint, 0.0)):
        got = error_consistency(a, b)
        assert got["kappa_max"] == pytest.approx(0.5455, abs=5e-5) and got["kappa_min"] == pytest.approx(-0.3636, abs=5e-5)
        assert got["kappa_position"] == pytest.approx(position)
    assert error_consistency(a, nested)["kappa"] == pytest.approx(0.5455, abs=5e-5)  # nested errors reach the bound


def test_image_split_by_hand():
    correct = np.array([[1, 1, 0, 0, 1], [1, 0, 0, 1, 1], [1, 1, 0, 0, 1]], bool)
    labels = np.array([0, 1, 1, 0, 2])
    got = image_split(correct, labels, num_classes=3)
    assert got["trivial"].tolist() == [1, 0, 1]  # samples 0 and 4
    assert got["impossible"].tolist() == [0, 1, 0]  # sample 2
    assert got["separating"].tolist() == [1, 1, 0]  # samples 3 and 1
