"""Which sample ids the study's splits hold: id ranges, finding a sample, and the samples a model gets wrong."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from zooscope.data.datasets import Dataset
from zooscope.mistakes.samples import describe_ids, locate_sample, select_samples, split_ids, valid_ids, wrong_ids


@pytest.fixture
def fashion_like() -> Dataset:
    """Fashion-MNIST's layout in small: training images at positions 0..11, test images at 12..19. Train and
    calibration are scattered subsets of the training images, eval the test images; 8..11 are in no split. Ids are
    positions + 1000, so a position taken for an id shows."""
    n = 20
    return Dataset("fashion-like", ("top", "trouser"), np.arange(n, dtype=np.int64) + 1000,
                   np.arange(n, dtype=np.int64) % 2,
                   {"train": np.array([0, 2, 4, 6]), "calibration": np.array([1, 3, 5, 7]),
                    "eval": np.arange(12, 20), "disjoint": np.array([], dtype=np.int64)})


def test_describe_ids_gives_runs_or_the_span():
    assert describe_ids(np.arange(60000, 70000)) == "10,000 ids: 60000..69999"
    assert describe_ids(np.array([7, 3, 4, 5, 9])) == "5 ids: 3..5, 7, 9"  # sorted, three runs
    assert describe_ids(np.array([1, 3, 5, 7])) == "4 ids within 1..7"  # more runs than are worth naming
    assert describe_ids(np.array([42])) == "1 id: 42" and describe_ids(np.array([], dtype=np.int64)) == "no ids"


def test_split_ids_and_valid_ids_name_every_split(fashion_like):
    ids = split_ids(fashion_like)
    assert ids["train"].tolist() == [1000, 1002, 1004, 1006] and ids["eval"].tolist() == list(range(1012, 1020))
    assert valid_ids(fashion_like) == ("train: 4 ids within 1000..1006; calibration: 4 ids within 1001..1007; "
                                       "eval: 8 ids: 1012..1019")


def test_locate_sample_finds_the_split_and_row_or_names_the_valid_ids(fashion_like):
    assert locate_sample(fashion_like, 1004) == ("train", 2)
    assert locate_sample(fashion_like, 1007) == ("calibration", 3)
    assert locate_sample(fashion_like, 1012) == ("eval", 0)
    with pytest.raises(ValueError, match=r"^sample 1009 is in none of the study's splits .*eval: 8 ids: 1012\.\.1019"):
        locate_sample(fashion_like, 1009)  # a training image the study does not use
    with pytest.raises(ValueError, match=r"^no sample with id 5 in fashion-like; valid ids: train: 4 ids"):
        locate_sample(fashion_like, 5)  # a position, not an id


def test_select_samples_filters_by_split_class_and_kept_ids(fashion_like):
    assert {s: v.tolist() for s, v in select_samples(fashion_like).items()} == {
        "train": [1000, 1002, 1004, 1006], "calibration": [1001, 1003, 1005, 1007], "eval": list(range(1012, 1020))}
    assert select_samples(fashion_like, split="eval", label=1)["eval"].tolist() == [1013, 1015, 1017, 1019]
    kept = select_samples(fashion_like, label=0, keep={"eval": np.array([1012, 1013, 1014])})
    assert list(kept) == ["eval"] and kept["eval"].tolist() == [1012, 1014]  # train, calibration: not in keep
    with pytest.raises(ValueError, match="unknown split 'test'; splits: train, calibration, eval"):
        select_samples(fashion_like, split="test")


def test_wrong_ids_reads_the_predictions_tables(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    pl.DataFrame({"sample_id": [1012, 1013, 1014], "correct": [True, False, False]}).write_parquet(
        folder / "eval.parquet")
    pl.DataFrame({"sample_id": [1001], "correct": [False]}).write_parquet(folder / "calibration.parquet")
    got = wrong_ids(tmp_path, "m")
    assert got["eval"].tolist() == [1013, 1014] and got["calibration"].tolist() == [1001]
    with pytest.raises(FileNotFoundError, match=r"other/calibration\.parquet: predictions not found; run predict@other"):
        wrong_ids(tmp_path, "other")
