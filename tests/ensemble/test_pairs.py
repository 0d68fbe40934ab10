"""zooscope.ensemble.pairs and zooscope.artifacts: the pair table against the per-pair functions."""

import numpy as np
import polars as pl
import pytest

from tests.ensemble.test_blockwise import _zoo
from zooscope.ensemble import bootstrap_pair, class_specialisation, disagreement, error_consistency, pair_ensemble
from zooscope.ensemble import ensemble_keys, ensemble_rows, ensemble_table
from zooscope.vocab import pair_category
from zooscope.artifacts import read_predictions, unordered_pairs

TAGS = {"seed": 0, "hyperparameters": "h", "architecture": "cnn", "framework": "supervised", "data": "d"}
IDS = ["m0", "m1", "m2", "m3"]
CARDS = {"m0": {"tags": TAGS}, "m1": {"tags": {**TAGS, "seed": 1}}, "m2": {"tags": {**TAGS, "architecture": "mlp"}},
         "m3": {"tags": {**TAGS, "data": "other"}}}


def _write_predictions(root, probs, labels, ids=IDS):
    for mid, p in zip(ids, probs, strict=True):
        (root / mid).mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"sample_id": np.arange(len(labels)) + 1000, "label": labels, "pred": p.argmax(1)}).write_parquet(
            root / mid / "eval.parquet")
        np.save(root / mid / "eval_probs.npy", p.astype(np.float32))
    return read_predictions(root, list(ids))


def test_every_column_equals_the_per_pair_functions(tmp_path):
    probs, labels = _zoo(n_models=4, n=400)
    preds = _write_predictions(tmp_path, probs, labels)
    pairs = unordered_pairs(IDS)
    rows = pl.DataFrame(dict(ensemble_rows(preds, pairs, n_boot=300, seed=2)))
    table = ensemble_table(preds, CARDS, pairs, rows, roots={}, n_boot=300, seed=2, matched_band=0.05)
    frame = table.frame
    assert frame.select("model_a", "model_b").rows() == pairs and table.draws["kappa"].shape == (6, 300)
    p32 = probs.astype(np.float32)
    for row in frame.iter_rows(named=True):
        a, b = IDS.index(row["model_a"]), IDS.index(row["model_b"])
        ca, cb = p32[a].argmax(1) == labels, p32[b].argmax(1) == labels
        agree = error_consistency(ca, cb)
        ens = pair_ensemble(p32[a], p32[b], labels, logits_a=np.log(p32[a].astype(np.float64)),
                            logits_b=np.log(p32[b].astype(np.float64)))
        boot = bootstrap_pair(ca, cb, (p32[a].astype(np.float64) + p32[b]).argmax(1) == labels, n_boot=300, seed=2)
        assert row["category"] == pair_category(CARDS[row["model_a"]]["tags"], CARDS[row["model_b"]]["tags"])
        expected = {
            "acc_a": ens["acc_a"], "acc_b": ens["acc_b"], "kappa_lo": boot["kappa"][0], "kappa_hi": boot["kappa"][1],
            "gain_lo": boot["gain"][0], "gain_hi": boot["gain"][1], "ens_acc": ens["acc_ensemble"],
            "ens_acc_logits": ens["acc_ensemble_logits"], "gain": ens["gain"], "conversion": ens["conversion_rate"],
            "conversion_logits": ens["conversion_rate_logits"], "disagreement": disagreement(p32[a].argmax(1), p32[b].argmax(1)),
            "error_inconsistency_lo": boot["error_inconsistency"][0], "matched": abs(ens["acc_a"] - ens["acc_b"]) <= 0.05,
        } | {key: agree[key] for key in ("kappa", "kappa_max", "kappa_ratio", "error_inconsistency", "error_corr")}
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=1e-12, abs=1e-15), (row["model_a"], row["model_b"], key)
        spec = class_specialisation(p32[a], p32[b], labels, num_classes=probs.shape[2])
        per_class = table.per_class.filter((pl.col("model_a") == row["model_a"]) & (pl.col("model_b") == row["model_b"]))
        np.testing.assert_allclose(per_class["acc_ens"], spec["acc_ensemble"])
        better = spec["acc_a"] if ens["acc_a"] >= ens["acc_b"] else spec["acc_b"]
        np.testing.assert_allclose(per_class["ens_vs_better"], spec["acc_ensemble"] - better)


def test_predictions_of_other_samples_are_refused(tmp_path):
    probs, labels = _zoo(n_models=2, n=50)
    _write_predictions(tmp_path, probs, labels, ids=["m0", "m1"])
    shuffled = pl.read_parquet(tmp_path / "m1" / "eval.parquet").reverse()
    shuffled.write_parquet(tmp_path / "m1" / "eval.parquet")
    with pytest.raises(ValueError, match="m1.*differ from m0"):
        read_predictions(tmp_path, ["m0", "m1"])
    with pytest.raises(FileNotFoundError, match="predict@m9"):
        read_predictions(tmp_path, ["m0", "m9"])


def test_keys_change_with_the_probabilities_and_settings_only(tmp_path):
    probs, labels = _zoo(n_models=3, n=60)
    preds = _write_predictions(tmp_path, probs, labels, ids=IDS[:3])
    pairs = unordered_pairs(IDS[:3])
    keys = ensemble_keys(preds, pairs, n_boot=1000, seed=0)
    np.save(tmp_path / "m2" / "eval_probs.npy", probs[2][::-1].astype(np.float32))
    changed = ensemble_keys(preds, pairs, n_boot=1000, seed=0)
    assert [keys[p] == changed[p] for p in pairs] == [True, False, False]  # (m0, m1) kept; pairs with m2 renewed
    assert ensemble_keys(preds, pairs, n_boot=1000, seed=1)[("m0", "m1")] != keys[("m0", "m1")]
    with pytest.raises(ValueError, match="at least two models"):
        unordered_pairs(["m0"])


def test_group_table_weights_classes_by_support_by_hand():
    import polars as pl

    from zooscope.ensemble import group_table

    per_class = pl.DataFrame({"model_a": ["x"] * 3, "model_b": ["y"] * 3, "class": [0, 1, 2], "support": [10, 30, 5],
                              "acc_a": [0.9, 0.5, 1.0], "acc_b": [0.5, 0.7, 0.0], "acc_ens": [0.8, 0.7, 1.0],
                              "ens_vs_better": [-0.1, 0.2, 0.0]})  # x is the better member overall
    got = group_table(per_class, {"g01": (0, 1), "g2": (2,)}).to_dicts()
    assert [r["group"] for r in got] == ["g01", "g2"] and got[0]["support"] == 40
    assert got[0]["acc_a"] == pytest.approx((9 + 15) / 40) and got[0]["acc_b"] == pytest.approx((5 + 21) / 40)
    assert got[0]["winner"] == "y" and got[1]["winner"] == "x" and got[1]["acc_ens"] == 1.0
    # the ensemble (8 + 21 right of 40) against x, the better member overall (9 + 15 right)
    assert got[0]["ens_vs_better"] == pytest.approx((8 + 21 - 9 - 15) / 40) and got[1]["ens_vs_better"] == 0
    with pytest.raises(ValueError, match="class_groups.far: class 7 does not exist"):
        group_table(per_class, {"far": (7,)})
    assert group_table(per_class, {}).is_empty()
