"""Explanation by example: nearest training samples of a sample in an embedding."""

from __future__ import annotations

import numpy as np
import pytest

from zooscope.data.datasets import SPLITS
from zooscope.mistakes import explain_sample, nearest_training


@pytest.fixture
def pixel_embeddings(digits, tmp_path):
    """digits' pixels as a model's embedding, one .npy per split."""
    x = digits.images.reshape(len(digits.images), -1).astype(np.float32)
    for s in SPLITS:
        np.save(tmp_path / f"{s}.npy", x[digits.split(s)])
    return tmp_path, x


def test_nearest_training_is_cosine_order(pixel_embeddings, digits):
    _, x = pixel_embeddings
    train, query = x[digits.split("train")], x[digits.split("eval")[:5]]
    sim, pos = nearest_training(train, query, k=4)
    unit = train / np.linalg.norm(train, axis=1, keepdims=True)
    full = (query / np.linalg.norm(query, axis=1, keepdims=True)) @ unit.T
    np.testing.assert_allclose(sim, np.take_along_axis(full, pos, 1), rtol=1e-5)
    np.testing.assert_allclose(sim, -np.sort(-full, 1)[:, :4], rtol=1e-5)
    with pytest.raises(ValueError, match="k must"):
        nearest_training(train, query, k=0)


def test_explain_sample_from_eval_and_train(pixel_embeddings, digits):
    folder, _ = pixel_embeddings
    sid = int(digits.sample_ids[digits.split("eval")[3]])
    query, rows = explain_sample(folder, digits, sid, k=5)
    assert query["split"] == "eval" and query["label"] == digits.labels[digits.split("eval")[3]]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(a["similarity"] >= b["similarity"] for a, b in zip(rows, rows[1:]))
    assert sum(r["label"] == query["label"] for r in rows) >= 4  # digits' pixels already separate classes well
    own = int(digits.sample_ids[digits.split("train")[0]])
    query, rows = explain_sample(folder, digits, own, k=5)
    assert query["split"] == "train" and own not in {r["sample_id"] for r in rows} and len(rows) == 5
    with pytest.raises(ValueError, match="no sample"):
        explain_sample(folder, digits, 10**9, k=3)
