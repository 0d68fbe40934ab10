"""zooscope.similarity.tables on synthetic embeddings: values, and which pairs a rerun computes."""

import json

import numpy as np
import pytest

from zooscope.config import parse_study
from zooscope.data.datasets import SPLITS
from zooscope.similarity import concat_probe_acc
from zooscope.similarity import linear_cka, linear_cka_debiased, mutual_knn
from zooscope.similarity import cka_heatmap, similarity_tables

SIZES = {"train": 90, "calibration": 40, "eval": 60}


def _embed(root, mid, seed):
    """A model's embeddings: a shared signal of the labels plus model-specific noise and width."""
    rng = np.random.default_rng(seed)
    for split, n in SIZES.items():
        signal = np.random.default_rng(list(SIZES).index(split)).normal(size=(n, 4))
        x = np.concatenate([signal @ rng.normal(size=(4, 5)), rng.normal(size=(n, 2 + seed % 3))], axis=1)
        (root / "embeddings" / mid).mkdir(parents=True, exist_ok=True)
        np.save(root / "embeddings" / mid / f"{split}.npy", x.astype(np.float32))
    (root / "probes" / mid).mkdir(parents=True, exist_ok=True)
    (root / "probes" / mid / "probe.json").write_text(json.dumps({"probe_acc": 0.5 + seed / 100}))


def _tables(root, study):
    cards = {mid: {"tags": spec.tags.model_dump()} for mid, spec in study.models.items()}
    labels = {s: np.random.default_rng(list(SIZES).index(s)).integers(0, 3, n) for s, n in SIZES.items()}
    return similarity_tables(study, cards, embeddings=root / "embeddings", probes=root / "probes", cache=root / "cache",
                             labels=labels, num_classes=3), labels


def test_scores_and_incremental_reruns(tmp_path, tiny_study_dict):
    for seed, mid in enumerate(tiny_study_dict["models"]):
        _embed(tmp_path, mid, seed)
    study = parse_study(tiny_study_dict)
    first, labels = _tables(tmp_path, study)
    assert first.computed == {"similarity": 6, "concat": 6, "mix": first.mixes.select("model_a", "model_b").n_unique()}
    row = first.frame.filter(model_a="cnn_a", model_b="mlp").row(0, named=True)
    load = {m: {s: np.load(tmp_path / "embeddings" / m / f"{s}.npy") for s in SPLITS} for m in ("cnn_a", "mlp")}
    assert row["category"] == "architecture" and row["probe_acc_b"] == pytest.approx(0.52)
    assert row["cka"] == pytest.approx(linear_cka(load["cnn_a"]["eval"], load["mlp"]["eval"]))
    assert row["cka_debiased"] == pytest.approx(linear_cka_debiased(load["cnn_a"]["eval"], load["mlp"]["eval"]))
    assert row["mutual_knn"] == mutual_knn(load["cnn_a"]["eval"], load["mlp"]["eval"], k=5)
    assert row["concat_probe_acc"] == concat_probe_acc([load["cnn_a"], load["mlp"]], labels, num_classes=3,
                                                       l2_grid=(0.01, 0.001), max_iter=50, tol=1e-5)
    assert row["concat_gain"] == pytest.approx(row["concat_probe_acc"] - 0.52)
    assert set(first.mixes["share_a"]) == {0.0, 0.5, 1.0}

    again, _ = _tables(tmp_path, study)
    assert again.computed == {"similarity": 0, "concat": 0, "mix": 0}
    assert again.frame.equals(first.frame)

    _embed(tmp_path, "cnn_c", 7)
    grown = parse_study({**tiny_study_dict, "models": {**tiny_study_dict["models"],
                                                       "cnn_c": tiny_study_dict["models"]["cnn_b"]}})
    bigger, _ = _tables(tmp_path, grown)
    assert bigger.computed["similarity"] == 4 and bigger.computed["concat"] == 4 and len(bigger.frame) == 10

    heat = cka_heatmap(bigger.frame, list(grown.models))
    assert len(heat) == 25 and heat.filter(model_a="mlp", model_b="cnn_a")["cka"].item() == pytest.approx(row["cka"])


def test_large_zoos_probe_only_the_extreme_pairs_of_each_category(tmp_path, tiny_study_dict):
    for seed, mid in enumerate(tiny_study_dict["models"]):
        _embed(tmp_path, mid, seed)
    tiny_study_dict["similarity"]["concat_all_up_to"] = 3
    tables, _ = _tables(tmp_path, parse_study(tiny_study_dict))
    probed = tables.frame.filter(tables.frame["concat_probe_acc"].is_not_null())
    mixed = set(tables.mixes.select("model_a", "model_b").rows())
    assert set(probed.select("model_a", "model_b").rows()) == mixed and tables.computed["concat"] == len(mixed) < 6
