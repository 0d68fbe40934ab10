"""The artifact layout's readers and views, against hand-worked examples."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from zooscope.artifacts import Predictions, embedding_file, load_embeddings, pair_matrix, unordered_pairs


def test_pair_matrix_of_an_unordered_table_is_symmetric_and_leaves_gaps_nan():
    pairs = pl.DataFrame({"model_a": ["a", "a", "x"], "model_b": ["b", "c", "a"], "kappa": [0.5, None, 0.9]})
    got = pair_matrix(pairs, ["c", "b", "a"], "kappa", diagonal=1.0)
    want = np.array([[1.0, np.nan, np.nan], [np.nan, 1.0, 0.5], [np.nan, 0.5, 1.0]])  # a-c is null, x is not shown
    np.testing.assert_array_equal(got, want)


def test_pair_matrix_of_an_ordered_table_keeps_direction():
    rows = pl.DataFrame({"source": ["a", "a", "b", "b"], "target": ["a", "b", "a", "b"], "acc": [0.1, 0.7, 0.6, 0.2]})
    got = pair_matrix(rows, ["a", "b"], "acc", rows="source", cols="target", symmetric=False)
    np.testing.assert_array_equal(got, [[0.1, 0.7], [0.6, 0.2]])


def test_unordered_pairs_follow_study_order():
    assert unordered_pairs(["m2", "m1", "m3"]) == [("m2", "m1"), ("m2", "m3"), ("m1", "m3")]
    with pytest.raises(ValueError, match="at least two models"):
        unordered_pairs(["only"])


def test_load_embeddings_names_the_file_that_is_missing_or_the_wrong_size(tmp_path):
    np.save(embedding_file(tmp_path, "train"), np.zeros((4, 2), np.float32))
    got = load_embeddings(tmp_path, ("train",), rows={"train": 4})
    assert got["train"].shape == (4, 2) and isinstance(got["train"], np.memmap)
    with pytest.raises(ValueError, match=r"train\.npy: 4 rows but the train split has 5 samples"):
        load_embeddings(tmp_path, ("train",), rows={"train": 5})
    with pytest.raises(FileNotFoundError, match=r"eval\.npy: embeddings not found"):
        load_embeddings(tmp_path, ("train", "eval"))


def test_link_inputs_links_local_files_notes_the_rest_and_drops_stale_links(tmp_path):
    from zooscope.artifacts import link_inputs

    ckpt = tmp_path / "ckpt.bin"
    ckpt.write_bytes(b"one")
    folder = tmp_path / "inputs"
    link_inputs(folder, {"models/a": ckpt, "models/b": None, "dataset": tmp_path})
    assert (folder / "models/a").is_symlink() and (folder / "models/a").read_bytes() == b"one"
    assert (folder / "models/b").read_text() == "read from no local file\n" and (folder / "dataset").is_symlink()
    ckpt.write_bytes(b"two")  # what a dependency on the link sees: the file's new contents
    assert (folder / "models/a").read_bytes() == b"two"
    link_inputs(folder, {"models/b": None})
    assert not (folder / "models/a").exists() and not (folder / "dataset").exists()
    with pytest.raises(FileNotFoundError, match=r"models/c: .*nothing\.bin: not found"):
        link_inputs(folder, {"models/c": tmp_path / "nothing.bin"})


def test_class_accuracy_hand_worked():
    # labels 0 0 1 1 1 (no sample of class 2); model 0 right on 0, 2, 3; model 1 right on 1, 2, 3, 4
    labels = np.array([0, 0, 1, 1, 1])
    pred = np.array([[0, 1, 1, 1, 0], [2, 0, 1, 1, 1]])
    preds = Predictions(("a", "b"), np.arange(5), labels, pred, ())
    acc = preds.class_accuracy(num_classes=3)
    np.testing.assert_allclose(acc[:, :2], [[1 / 2, 2 / 3], [1 / 2, 1.0]])
    assert np.isnan(acc[:, 2]).all()
