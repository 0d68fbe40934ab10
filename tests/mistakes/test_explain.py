"""Explanation by example: nearest training samples of a sample in an embedding, the sample's prediction and
confidence, and the page that shows them."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from tests.report.test_report import _chromium, needs_chromium
from zooscope.data.datasets import SPLITS
from zooscope.mistakes import explain_sample, nearest_training
from zooscope.mistakes.explain import describe_prediction, sample_prediction
from zooscope.report.explain_panel import explain_page


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


# --------------------------------------------------------------------------- embeddings whose neighbours are known


@pytest.fixture
def axis_embeddings(digits, tmp_path):
    """Each training sample on its own axis (scaled by a random positive factor: cosine ignores it), so a query's
    cosine similarity to training sample j is its coordinate j over its norm. Eval row 3 is 3 e_10 + 2 e_20 + e_30
    (+ 0.01 everywhere): its nearest training samples are rows 10, 20, 30 by construction. Training row 5 is
    e_5 + 0.5 e_7 + 0.25 e_9: itself first (left out), then rows 7 and 9."""
    n = len(digits.split("train"))
    rng = np.random.default_rng(0)
    train = np.eye(n, dtype=np.float32) * rng.uniform(0.5, 2.0, (n, 1)).astype(np.float32)
    train[5, [7, 9]] = [0.5 * train[5, 5], 0.25 * train[5, 5]]
    queries = {s: rng.uniform(-1, 1, (len(digits.split(s)), n)).astype(np.float32) for s in ("calibration", "eval")}
    queries["eval"][3] = 0.01
    queries["eval"][3, [10, 20, 30]] += [3.0, 2.0, 1.0]
    folder = tmp_path / "m"
    folder.mkdir()
    for split, x in {"train": train, **queries}.items():
        np.save(folder / f"{split}.npy", x)
    return folder, queries["eval"][3]


def _train_id(digits, row: int) -> int:
    return int(digits.sample_ids[digits.split("train")[row]])


def test_explain_sample_finds_the_neighbours_built_in(axis_embeddings, digits):
    folder, q = axis_embeddings
    eval_pos = digits.split("eval")[3]
    query, rows = explain_sample(folder, digits, int(digits.sample_ids[eval_pos]), k=3)
    label = int(digits.labels[eval_pos])
    assert query == {"sample_id": int(digits.sample_ids[eval_pos]), "split": "eval", "label": label,
                     "class": digits.classes[label]}
    assert [r["sample_id"] for r in rows] == [_train_id(digits, j) for j in (10, 20, 30)]
    np.testing.assert_allclose([r["similarity"] for r in rows], q[[10, 20, 30]] / np.linalg.norm(q), rtol=1e-5)
    assert [r["label"] for r in rows] == [int(digits.labels[digits.split("train")[j]]) for j in (10, 20, 30)]
    query, rows = explain_sample(folder, digits, _train_id(digits, 5), k=2)
    assert query["split"] == "train" and [r["sample_id"] for r in rows] == [_train_id(digits, 7), _train_id(digits, 9)]
    np.testing.assert_allclose([r["similarity"] for r in rows], np.array([0.5, 0.25]) / np.sqrt(1 + 0.5**2 + 0.25**2),
                               rtol=1e-5)


# --------------------------------------------------------------------------- the sample's prediction


@pytest.fixture
def predicted(digits, tmp_path):
    """A model "m" with the predict stage's probabilities (eval, calibration), head logits for the train split and
    a fitted temperature of 2: training row 4's logits are 2 log p + 7, so its scaled probabilities are p."""
    rng = np.random.default_rng(1)
    preds, emb, metrics = tmp_path / "predictions", tmp_path / "embeddings", tmp_path / "metrics"
    for folder in (preds / "m", emb / "m", metrics):
        folder.mkdir(parents=True)
    probs = {s: rng.dirichlet(np.ones(10), len(digits.split(s))).astype(np.float32) for s in ("calibration", "eval")}
    for split, p in probs.items():
        np.save(preds / "m" / f"{split}_probs.npy", p)
    p_train = np.array([0.05, 0.05, 0.05, 0.05, 0.5, 0.1, 0.05, 0.05, 0.05, 0.05])
    logits = rng.normal(size=(len(digits.split("train")), 10))
    logits[4] = 2 * np.log(p_train) + 7
    np.save(emb / "m" / "train_logits.npy", logits.astype(np.float32))
    (metrics / "m.json").write_text('{"temperature": 2.0}')
    return {"predictions": preds, "embeddings": emb, "metrics": metrics}, probs, p_train


def test_sample_prediction_from_stored_probabilities_and_scaled_training_logits(predicted, digits):
    folders, probs, p_train = predicted
    row = 17
    got = sample_prediction("m", digits, int(digits.sample_ids[digits.split("eval")[row]]), **folders)
    assert got["pred"] == int(np.argmax(probs["eval"][row]))
    assert got["confidence"] == pytest.approx(probs["eval"][row].max())
    assert got["source"].startswith(f"{folders['predictions'] / 'm' / 'eval_probs.npy'}: ")
    got = sample_prediction("m", digits, int(digits.sample_ids[digits.split("calibration")[2]]), **folders)
    np.testing.assert_allclose(got["probs"], probs["calibration"][2], rtol=1e-6)
    got = sample_prediction("m", digits, _train_id(digits, 4), **folders)
    np.testing.assert_allclose(got["probs"], p_train, rtol=1e-5)
    assert got["pred"] == 4 and got["confidence"] == pytest.approx(0.5) and "T=2.000" in got["source"]


def test_sample_prediction_without_a_head_or_with_bad_files(predicted, digits):
    folders, _, _ = predicted
    (folders["metrics"] / "m.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"m\.json: not found; run predict@m first \(its fitted temperature"):
        sample_prediction("m", digits, _train_id(digits, 4), **folders)
    (folders["embeddings"] / "m" / "train_logits.npy").unlink()  # a headless model: its probe predicts no train sample
    assert sample_prediction("m", digits, _train_id(digits, 4), **folders) is None
    np.save(folders["predictions"] / "m" / "eval_probs.npy", np.ones((3, 10), np.float32))
    with pytest.raises(ValueError, match=r"eval_probs\.npy: 3 rows but the split has 539 samples; re-run predict@m"):
        sample_prediction("m", digits, int(digits.sample_ids[digits.split("eval")[0]]), **folders)
    with pytest.raises(FileNotFoundError, match=r"other/eval_probs\.npy: not found; run predict@other first"):
        sample_prediction("other", digits, int(digits.sample_ids[digits.split("eval")[0]]), **folders)


def test_describe_prediction_says_right_or_wrong_and_where_from():
    query = {"sample_id": 7, "split": "eval", "label": 2, "class": "two"}
    classes = ("zero", "one", "two")
    probs = np.array([0.1, 0.7, 0.2])
    said = describe_prediction("m", query, {"pred": 1, "confidence": 0.7, "probs": probs, "source": "f.npy"}, classes)
    assert said == "m predicts one with confidence 0.700 (wrong; the label two has probability 0.200); from f.npy."
    assert "(right)" in describe_prediction("m", query, {"pred": 2, "confidence": 0.2, "probs": probs, "source": "f"},
                                            classes)
    assert describe_prediction("m", {**query, "split": "train"}, None, classes).startswith(
        "m predicts nothing for the train split: it has no head")


# --------------------------------------------------------------------------- the page


def _images(page: str) -> dict[str, np.ndarray]:
    """alt text -> the decoded pixels of every ``data:`` PNG in ``page``."""
    found = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', page)
    return {alt: np.asarray(Image.open(io.BytesIO(base64.b64decode(data)))) for data, alt in found}


def test_explain_page_shows_the_sample_its_prediction_and_neighbours(axis_embeddings, digits):
    folder, _ = axis_embeddings
    eval_pos = digits.split("eval")[3]
    sid = int(digits.sample_ids[eval_pos])
    query, rows = explain_sample(folder, digits, sid, k=3)
    wrong = (query["label"] + 1) % 10
    probs = np.full(10, 0.02)
    probs[wrong], probs[query["label"]] = 0.7, 0.12
    prediction = {"pred": wrong, "confidence": 0.7, "probs": probs, "source": "predictions/m/eval_probs.npy"}
    page = explain_page(digits, model="m", query=query, neighbours=rows, prediction=prediction, embeddings=str(folder))
    assert "http" not in page  # nothing from elsewhere: images are data: URIs
    text = re.sub(r"<[^>]+>", " ", page)
    assert f"{digits.classes[wrong]} (wrong)" in text and "0.700" in text and "m predicts" in text
    assert f"label {query['class']}" in text and f"the label {query['class']} has probability 0.120" in text
    images = _images(page)
    neighbour_ids = [_train_id(digits, j) for j in (10, 20, 30)]
    assert [alt.split(":")[0] for alt in images] == [f"sample {i}" for i in (sid, *neighbour_ids)]
    # 8x8 digits shown at 72 px: each pixel a 9x9 block
    for (alt, pixels), pos in zip(images.items(), [eval_pos, *(digits.split("train")[j] for j in (10, 20, 30))]):
        np.testing.assert_array_equal(pixels, np.kron(digits.images[pos], np.ones((9, 9), np.uint8)), err_msg=alt)
    for r in rows:
        assert f">{r['sample_id']}</td>" in page and f"{r['similarity']:.4f}" in page
    page = explain_page(digits, model="m", query=query, neighbours=rows, prediction=None, embeddings=str(folder))
    assert "m predicts nothing for the eval split" in page and "(wrong)" not in page


@needs_chromium
def test_explain_page_renders_offline_in_chromium(axis_embeddings, digits, tmp_path):
    folder, _ = axis_embeddings
    query, rows = explain_sample(folder, digits, int(digits.sample_ids[digits.split("eval")[3]]), k=3)
    path = tmp_path / "page.html"
    path.write_text(explain_page(digits, model="m", query=query, neighbours=rows, prediction=None, embeddings="e"))
    dom, console, requests = _chromium(path.as_uri(), tmp_path)
    assert console == "" and requests == []
    assert dom.count("<img") == 4 and "Its nearest training samples" in dom
