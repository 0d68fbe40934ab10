"""zooscope.paircache: only missing pairs are computed; the cache holds exactly the current pairs."""

import importlib
import sys

import numpy as np
import pytest
import polars as pl

from zooscope.paircache import cached_arrays, cached_pairs, code_digest, digest, uncached, uncached_arrays


def _compute(log):
    def compute(pairs):
        log.append(list(pairs))
        return {"score": [len(a + b) / 10 for a, b in pairs], "counts": np.array([np.arange(3) + len(a) for a, _ in pairs])}
    return compute


def test_only_new_keys_are_computed_and_stale_rows_are_dropped(tmp_path):
    path = tmp_path / "cache.parquet"
    log = []
    keys = {("a", "bb"): "k1", ("a", "ccc"): "k2"}
    rows, computed = cached_pairs(path, keys, _compute(log))
    assert computed == 2 and rows.row(1) == (0.4, [1, 2, 3])

    rows_again, computed = cached_pairs(path, keys, _compute(log))
    assert computed == 0 and rows_again.equals(rows) and len(log) == 1

    grown = {("a", "bb"): "k1", ("a", "ccc"): "k2-changed", ("bb", "dddd"): "k3"}
    rows, computed = cached_pairs(path, grown, _compute(log))
    assert computed == 2 and log[-1] == [("a", "ccc"), ("bb", "dddd")]
    assert rows["score"].to_list() == [0.3, 0.4, 0.6] and rows["counts"].to_numpy()[2].tolist() == [2, 3, 4]
    assert sorted(pl.read_parquet(path)["key"]) == ["k1", "k2-changed", "k3"]


def test_pairs_with_one_key_share_one_computation(tmp_path):
    log = []
    rows, computed = cached_pairs(tmp_path / "c.parquet", {("a", "bb"): "k", ("a", "cc"): "k", ("b", "c"): "j"},
                                  _compute(log))
    assert computed == 2 and log == [[("a", "bb"), ("b", "c")]] and rows["score"].to_list() == [0.3, 0.3, 0.2]
    assert len(pl.read_parquet(tmp_path / "c.parquet")) == 2


def test_an_empty_zoo_writes_an_empty_cache(tmp_path):
    rows, computed = cached_pairs(tmp_path / "c.parquet", {}, _compute([]))
    assert rows.is_empty() and computed == 0
    assert pl.read_parquet(tmp_path / "c.parquet").columns == ["key"]


def test_digests_change_with_every_part_and_with_the_code(tmp_path, monkeypatch):
    assert digest("x", 1, [0.5]) == digest("x", 1, [0.5])
    assert len({digest("x", 1), digest("x", 2), digest(1, "x"), digest("y", 1)}) == 4
    (tmp_path / "zs_tmp_module.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("zs_tmp_module")
    before = code_digest(module)
    (tmp_path / "zs_tmp_module.py").write_text("VALUE = 2\n")
    assert code_digest(module) != before
    del sys.modules["zs_tmp_module"]


def test_an_interrupted_run_keeps_the_chunks_it_computed(tmp_path):
    path, log = tmp_path / "c.parquet", []
    keys = {("a", "bb"): "k1", ("a", "cc"): "k2", ("b", "c"): "k3"}

    def fails_on_the_last(pairs):
        if ("b", "c") in pairs:
            raise KeyboardInterrupt
        return _compute(log)(pairs)

    try:
        cached_pairs(path, keys, fails_on_the_last, chunk=1, progress=False)
    except KeyboardInterrupt:
        pass
    assert sorted(pl.read_parquet(path)["key"]) == ["k1", "k2"]
    rows, computed = cached_pairs(path, keys, _compute(log), chunk=2, progress=False)
    assert computed == 1 and log[-1] == [("b", "c")] and rows["score"].to_list() == [0.3, 0.3, 0.2]


def _per_class(width, log):
    def compute(pairs):
        log.append(list(pairs))
        return {"acc": [0.5] * len(pairs), "per_class": np.array([np.arange(width) + len(a) for a, _ in pairs])}
    return compute


def test_a_cache_of_another_class_count_is_recomputed_not_mixed(tmp_path, capsys):
    """The cached per-class column holds 10 values; this run's has 3 (the dataset lost classes). Rows of the old
    width are never concatenated with the new (which turned the column into a list and broke every later run):
    the pairs whose key still matches are computed again, with a warning naming the cache."""
    path, log = tmp_path / "c.parquet", []
    cached_pairs(path, {("a", "b"): "k1", ("a", "c"): "k2"}, _per_class(10, log), progress=False)
    rows, computed = cached_pairs(path, {("a", "b"): "k1", ("b", "c"): "k3"}, _per_class(3, log), progress=False)
    assert computed == 2 and log[1:] == [[("b", "c")], [("a", "b")]]  # the new pair, then the cached one again
    assert [list(v) for v in rows["per_class"].to_numpy()] == [[1, 2, 3], [1, 2, 3]]
    assert rows.schema["per_class"] == pl.Array(pl.Int64, 3)
    assert "pair cache" in capsys.readouterr().err
    again, computed = cached_pairs(path, {("a", "b"): "k1", ("b", "c"): "k3"}, _per_class(3, log), progress=False)
    assert computed == 0 and again.equals(rows)


@pytest.mark.parametrize("contents", [b"", b"not parquet at all", None])
def test_an_unreadable_or_keyless_cache_is_recomputed(tmp_path, capsys, contents):
    path, log = tmp_path / "c.parquet", []
    if contents is None:
        pl.DataFrame({"other": ["k1"], "acc": [0.9]}).write_parquet(path)
    else:
        path.write_bytes(contents)
    rows, computed = cached_pairs(path, {("a", "b"): "k1"}, _per_class(2, log), progress=False)
    assert computed == 1 and rows["acc"].to_list() == [0.5]
    assert f"pair cache {path}" in capsys.readouterr().err
    assert pl.read_parquet(path)["key"].to_list() == ["k1"]


def test_items_need_not_be_pairs_and_no_path_means_no_cache(tmp_path):
    log = []

    def compute(items):
        log.append(list(items))
        return {"score": [len(m) / 10 for m in items]}

    keys = {"a": "k1", "bbb": "k2"}
    assert cached_pairs(None, keys, compute)[0]["score"].to_list() == [0.1, 0.3] and not list(tmp_path.iterdir())
    assert uncached(None, keys) == ["a", "bbb"] and uncached(tmp_path / "c.parquet", keys) == ["a", "bbb"]
    cached_pairs(tmp_path / "c.parquet", keys, compute, progress=False)
    assert uncached(tmp_path / "c.parquet", {**keys, "cc": "k3", "dd": "k3"}) == ["cc"]
    assert log == [["a", "bbb"], ["a", "bbb"]]


def _arrays(log):
    def compute(item):
        log.append(item)
        return {"x": np.full((2, len(item)), len(item), np.float32), "n": np.arange(len(item))}
    return compute


def test_arrays_are_computed_once_read_back_memory_mapped_and_stale_files_removed(tmp_path):
    folder, log = tmp_path / "arrays", []
    got, computed = cached_arrays(folder, {"a": "k1", "bb": "k2"}, _arrays(log), progress=False)
    assert computed == 2 and log == ["a", "bb"] and isinstance(got["bb"]["x"], np.memmap)
    assert got["bb"]["x"].tolist() == [[2.0, 2.0], [2.0, 2.0]] and got["a"]["n"].tolist() == [0]
    assert sorted(p.name for p in folder.iterdir()) == ["k1.json", "k1.n.npy", "k1.x.npy", "k2.json", "k2.n.npy",
                                                       "k2.x.npy"]
    assert uncached_arrays(folder, {"a": "k1", "ccc": "k3"}) == ["ccc"]
    again, computed = cached_arrays(folder, {"a": "k1", "ccc": "k3", "same": "k3"}, _arrays(log), progress=False)
    assert computed == 1 and log[-1] == "ccc" and again["same"]["x"].shape == (2, 3)
    assert sorted(p.name.partition(".")[0] for p in folder.iterdir()) == ["k1"] * 3 + ["k3"] * 3  # k2 removed
    plain, computed = cached_arrays(None, {"a": "k1"}, _arrays(log), progress=False)
    assert computed == 1 and plain["a"]["n"].tolist() == [0] and not isinstance(plain["a"]["n"], np.memmap)


@pytest.mark.parametrize("damage", ["truncate", "remove", "index"])
def test_a_damaged_array_result_is_computed_again(tmp_path, capsys, damage):
    folder, log = tmp_path / "arrays", []
    cached_arrays(folder, {"abc": "k1"}, _arrays(log), progress=False)
    if damage == "truncate":
        (folder / "k1.x.npy").write_bytes((folder / "k1.x.npy").read_bytes()[:-4])
    elif damage == "remove":
        (folder / "k1.n.npy").unlink()
    else:
        (folder / "k1.json").write_text("{")
    assert uncached_arrays(folder, {"abc": "k1"}) == ["abc"]
    got, computed = cached_arrays(folder, {"abc": "k1"}, _arrays(log), progress=False)
    assert computed == 1 and got["abc"]["x"].tolist() == [[3.0] * 3] * 2
    assert f"pair cache {folder / 'k1.json'}" in capsys.readouterr().err
    assert cached_arrays(folder, {"abc": "k1"}, _arrays(log), progress=False)[1] == 0
