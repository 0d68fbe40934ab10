"""zooscope.ensemble.blockwise against the per-pair functions of zooscope.ensemble.agreement, one pair at a time."""

import numpy as np
import pytest

from zooscope.ensemble import bootstrap_pair, bootstrap_statistics, class_specialisation, pair_ensemble
from zooscope.ensemble import ensemble_pairs
from zooscope.ensemble import bootstrap_weights, interval95, resampled_counts


def _zoo(n_models=5, n=300, num_classes=6, seed=0, ties=False):
    """Probabilities of models sharing a per-sample difficulty; ``ties`` rounds them to eighths (many exact
    ties and zeros, so the argmax tie rule and log 0 are exercised)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    difficulty = rng.normal(size=n)
    probs = []
    for m in range(n_models):
        logits = 1.5 * rng.normal(size=(n, num_classes))
        logits[np.arange(n), labels] += 1.0 + 0.3 * m - difficulty
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        probs.append(np.floor(p * 8) / 8 if ties else p)
    return np.stack(probs), labels


def _reference(probs, labels, a, b, *, n_boot, seed):
    """Everything ensemble_pairs counts for pair (a, b), one pair at a time: pair_ensemble, the argmax of
    the product of probabilities (the mean of log-probabilities), class_specialisation, bootstrap_pair."""
    ens = pair_ensemble(probs[a], probs[b], labels)
    product_right = (np.asarray(probs[a], np.float64) * probs[b]).argmax(1) == labels
    spec = class_specialisation(probs[a], probs[b], labels, num_classes=probs.shape[2])
    correct_a, correct_b = probs[a].argmax(1) == labels, probs[b].argmax(1) == labels
    correct_ens = (np.asarray(probs[a], np.float64) + probs[b]).argmax(1) == labels
    boot = bootstrap_pair(correct_a, correct_b, correct_ens, n_boot=n_boot, seed=seed)
    return ens, product_right, spec, boot, correct_a != correct_b


@pytest.mark.parametrize("ties", [False, True])
def test_every_count_matches_the_per_pair_functions(ties):
    probs, labels = _zoo(ties=ties)
    n, n_boot, seed = len(labels), 200, 4
    pairs = np.array([(0, 1), (0, 4), (2, 3), (3, 0), (4, 4)])
    got = ensemble_pairs(list(probs), labels, pairs, n_boot=n_boot, seed=seed, block_bytes=5000)  # many blocks
    weights = bootstrap_weights(n, n_boot=n_boot, seed=seed)
    boot_model = resampled_counts(weights, (probs.argmax(2) == labels).T)  # [n_boot, n_models]
    for p, (a, b) in enumerate(pairs):
        ens, product_right, spec, boot, one_right = _reference(probs, labels, a, b, n_boot=n_boot, seed=seed)
        assert got["ens_right"][p] / n == ens["acc_ensemble"]
        np.testing.assert_equal(got["ens_converted"][p] / one_right.sum() if one_right.any() else np.nan,
                                ens["conversion_rate"])
        assert got["ens_logits_right"][p] == product_right.sum()
        assert got["ens_logits_converted"][p] == (product_right & one_right).sum()
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(got["class_ens_right"][p] / spec["support"], spec["acc_ensemble"])
        assert got["theta_mean"][p] == pytest.approx(spec["theta_mean"], abs=1e-12)
        assert got["theta_std"][p] == pytest.approx(spec["theta_std"], abs=1e-7)
        draws = bootstrap_statistics(boot_model[:, a], boot_model[:, b], got["boot_both_right"][p],
                                     got["boot_ens_right"][p], n)
        for key, interval in boot.items():
            assert tuple(float(v) for v in interval95(draws[key])) == interval, key


def test_the_log_probability_ensemble_is_pair_ensemble_with_log_probabilities_as_logits():
    probs, labels = _zoo(n_models=3)
    got = ensemble_pairs(list(probs), labels, np.array([(0, 1), (1, 2)]), n_boot=10)
    for p, (a, b) in enumerate([(0, 1), (1, 2)]):
        ens = pair_ensemble(probs[a], probs[b], labels, logits_a=np.log(probs[a]), logits_b=np.log(probs[b]))
        assert got["ens_logits_right"][p] / len(labels) == ens["acc_ensemble_logits"]


def test_memory_mapped_float16_files_give_the_same_counts_as_arrays(tmp_path):
    probs, labels = _zoo(n_models=3, num_classes=10)
    half = probs.astype(np.float16)
    paths = []
    for m, p in enumerate(half):
        paths.append(tmp_path / f"{m}.npy")
        np.save(paths[-1], p)
    pairs = np.array([(0, 1), (0, 2), (1, 2)])
    from_files = ensemble_pairs(paths, labels, pairs, n_boot=50, block_bytes=10_000)
    from_arrays = ensemble_pairs(list(half), labels, pairs, n_boot=50)
    for key, value in from_arrays.items():  # counts exactly; theta sums in another order across blocks
        np.testing.assert_allclose(from_files[key], value, rtol=1e-12, err_msg=key)
    ens = pair_ensemble(half[0], half[2], labels)
    assert from_files["ens_right"][1] / len(labels) == ens["acc_ensemble"]


def test_a_model_paired_with_itself_is_the_model():
    probs, labels = _zoo(n_models=2)
    got = ensemble_pairs(list(probs), labels, np.array([(1, 1)]), n_boot=20)
    right = int((probs[1].argmax(1) == labels).sum())
    assert got["ens_right"][0] == got["ens_logits_right"][0] == right
    assert got["ens_converted"][0] == 0
    assert got["theta_mean"][0] == pytest.approx(np.pi / 4) and got["theta_std"][0] == pytest.approx(0, abs=1e-12)
    np.testing.assert_array_equal(got["boot_both_right"], got["boot_ens_right"])


def test_inputs_are_checked():
    probs, labels = _zoo(n_models=2)
    with pytest.raises(ValueError, match="pairs"):
        ensemble_pairs(list(probs), labels, np.array([(0, 2)]))
    with pytest.raises(ValueError, match=r"probs\[1\]"):
        ensemble_pairs([probs[0], probs[1][:-1]], labels, np.array([(0, 1)]))
    with pytest.raises(ValueError, match="labels"):
        ensemble_pairs(list(probs), labels.astype(float), np.array([(0, 1)]))
