"""zooscope.similarity.overlap: concatenated probes, fixed-width mixes and the choice of extreme pairs."""

import numpy as np
import polars as pl

from zooscope.data.datasets import SPLITS
from zooscope.similarity import concat_probe_acc, extreme_pairs, mix_curve, outermost
from zooscope.models import fit_probe

PROBE = {"num_classes": 4, "l2_grid": (0.01, 0.001), "max_iter": 60, "tol": 1e-5}
SIZES = {"train": 400, "calibration": 150, "eval": 300}


def _complementary(seed=0):
    """Embeddings a and b [n, 6]: a tells classes 0 and 1 apart from the rest, b classes 2 and 3; every
    column carries that information (so half the columns keep most of it)."""
    rng = np.random.default_rng(seed)
    labels = {s: rng.integers(0, 4, n) for s, n in SIZES.items()}
    means_a, means_b = (rng.normal(size=(4, 6)).astype(np.float32) for _ in range(2))
    means_a[2:], means_b[:2] = 0, 0
    a, b = {}, {}
    for s, y in labels.items():
        noise = rng.normal(size=(len(y), 12)).astype(np.float32)
        a[s], b[s] = noise[:, :6] + 2 * means_a[y], noise[:, 6:] + 2 * means_b[y]
    return a, b, labels


def test_concat_probe_is_the_probe_protocol_on_side_by_side_features():
    a, b, labels = _complementary()
    probe = fit_probe(a["train"], labels["train"], a["calibration"], labels["calibration"], **PROBE)
    alone = float((probe.logits(a["eval"]).argmax(1) == labels["eval"]).mean())
    assert concat_probe_acc([a], labels, **PROBE) == alone
    acc_b = concat_probe_acc([b], labels, **PROBE)
    both = concat_probe_acc([a, b], labels, **PROBE)
    assert both > max(alone, acc_b) + 0.2  # each knows what the other lacks


def test_mix_curve_ends_are_the_single_models_at_the_budget():
    a, b, labels = _complementary(seed=1)
    b_wide = {s: np.concatenate([b[s], b[s][:, :2]], axis=1) for s in SPLITS}  # 8 columns: the budget is a's 6
    dim, accs = mix_curve(a, b_wide, labels, fractions=(0.0, 0.5, 1.0), dim=None, seed=0, **PROBE)
    assert dim == 6 and len(accs) == 3
    # the documented protocol written out: per share, round(share * 6) seeded columns of a, the rest of b, one probe
    rng, want = np.random.default_rng(0), []
    for share in (0.0, 0.5, 1.0):
        k = round(share * 6)
        cols_a, cols_b = np.sort(rng.choice(6, k, replace=False)), np.sort(rng.choice(8, 6 - k, replace=False))
        x = {s: np.concatenate([a[s][:, cols_a], b_wide[s][:, cols_b]], axis=1) for s in SPLITS}
        probe = fit_probe(x["train"], labels["train"], x["calibration"], labels["calibration"], **PROBE)
        want.append(float((probe.logits(x["eval"]).argmax(1) == labels["eval"]).mean()))
    assert accs == want
    assert accs[1] > max(accs[0], accs[2])  # half of each beats all of either
    assert mix_curve(a, b_wide, labels, fractions=(0.0, 0.5, 1.0), dim=100, seed=0, **PROBE) == (dim, accs)


def test_extreme_pairs_are_the_most_and_least_similar_of_each_category():
    frame = pl.DataFrame({
        "model_a": ["a", "a", "a", "b", "b", "c"], "model_b": ["b", "c", "d", "c", "d", "d"],
        "category": ["reinit", "framework", "framework", "framework", "architecture", "framework"],
        "cka_debiased": [0.9, 0.2, float("nan"), 0.5, 0.4, 0.7],
    })
    assert extreme_pairs(frame, score="cka_debiased") == [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]


def test_outermost_alternates_most_and_least_similar_and_keeps_the_order():
    frame = pl.DataFrame({"model_a": ["a", "a", "b", "c"], "model_b": ["b", "c", "c", "d"],
                          "cka_debiased": [0.9, 0.1, 0.5, 0.7]})
    pairs = [("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")]
    assert outermost(frame, pairs, score="cka_debiased", limit=1) == [("a", "b")]
    assert outermost(frame, pairs, score="cka_debiased", limit=2) == [("a", "b"), ("a", "c")]
    assert outermost(frame, pairs, score="cka_debiased", limit=3) == [("a", "b"), ("a", "c"), ("c", "d")]
    assert outermost(frame, pairs, score="cka_debiased", limit=None) == pairs
    assert outermost(frame, pairs[:2], score="cka_debiased", limit=5) == pairs[:2]
