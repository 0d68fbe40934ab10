"""Per-pair (and per-model) results kept across runs, keyed by everything they were computed from.

A pairwise stage keys each pair by a digest of the two models' artifact files (their sha256), the stage
settings, and the source of the library modules that compute the numbers; a result whose key is
unchanged is reused. Adding one model to a zoo of N therefore computes N new pairs, and editing the code
that computes a number recomputes it. The cache is one parquet table (a ``key`` column, then the
result's fields) that the stage declares as a DVC output with ``persist: true``; it is rewritten
atomically with the current zoo's pairs only. What a result is of (an *item*) may also be one model (its
id), or a model and a setting: the cache only sees items and their keys.

Results too large for a table row (a model's adversarial examples) are kept by :func:`cached_arrays`, one
``.npy`` file per array in a folder, with the same keys and the same rule: the folder keeps the current
items' files only.

What is read back is checked, never trusted: a cache that cannot be read, lacks the ``key`` column, or whose
fields or types differ from what this run computes (say, a per-class column of another class count) is
dropped with a one-line warning and its pairs are computed again.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl

from zooscope.io import read_json, sha256_file, write_json, write_npy, write_parquet

__all__ = ["digest", "code_digest", "cached_pairs", "uncached", "cached_arrays", "uncached_arrays"]

Pair = tuple[str, str]
#: What a cached result is of: a pair of model ids, one model id, or any hashable naming it.
Item = Hashable


def digest(*parts: Any) -> str:
    """sha256 (hex) of JSON-serialisable parts (strings, numbers, lists, mappings), order-sensitive."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def code_digest(*modules: ModuleType) -> str:
    """Digest of the modules' source files: part of a key, so changing how a number is computed invalidates it."""
    return digest(*(sha256_file(inspect.getfile(m)) for m in modules))


def cached_pairs(
    path: str | os.PathLike | None,
    keys: Mapping[Item, str],
    compute: Callable[[list[Item]], Mapping[str, Any]],
    *,
    chunk: int | None = None,
    desc: str = "pairs",
    progress: bool = True,
    unit: str = "pair",
) -> tuple[pl.DataFrame, int]:
    """The results of every pair (item) of ``keys``, from the cache at ``path`` or, when missing, from ``compute``.

    Args:
        path: the cache (parquet); absent means empty; None: no cache (everything is computed, nothing written).
        keys: pair (model_a, model_b), or any other item -> its key (see :func:`digest`); items with equal keys
            share a result.
        compute: called with the pairs whose key is not cached (one pair per key), ``chunk`` at a time (all
            at once for None); returns the results as columns, field -> one value per pair (a sequence, a
            1-D array, a 2-D array of one vector per pair, or a ``polars.Series`` of an explicit type).
        chunk: pairs per call; the cache is written after every call, so an interrupted run keeps what
            it computed. desc, progress, unit: the progress bar (items computed).

    Returns:
        (one row per pair of ``keys``, in order, with the result fields; the number of pairs computed).
        The cache is rewritten holding exactly these results.
    """
    from tqdm.auto import tqdm

    path = Path(path) if path is not None else None
    order = pl.DataFrame({"key": list(keys.values())}, schema={"key": pl.String})
    cached = _read(path, order) if path is not None else None
    todo = _distinct(keys)
    known = set(cached["key"]) if cached is not None else set()
    pending = [(key, pair) for key, pair in todo.items() if key not in known]
    parts: list[pl.DataFrame] = []
    step = chunk or max(len(pending), 1)
    with tqdm(total=len(pending), desc=desc, unit=unit, disable=not (progress and pending), mininterval=1.0) as bar:
        start = 0
        while start < len(pending):
            part = pending[start:start + step]
            parts.append(pl.DataFrame({"key": [key for key, _ in part], **compute([pair for _, pair in part])}))
            if cached is not None and cached.schema != parts[-1].schema:
                _warn(path, f"its fields {_describe(cached.schema)} differ from this run's {_describe(parts[-1].schema)}")
                redo = [(key, todo[key]) for key in cached["key"]]
                pending += redo
                bar.total += len(redo)
                cached = None
            if path is not None:
                write_parquet(path, _concat(cached, parts).unique("key", maintain_order=True))
            bar.update(len(part))
            start += len(part)
    table = order
    if cached is not None or parts:
        table = order.join(_concat(cached, parts), on="key", how="left", maintain_order="left")
    if path is not None:
        write_parquet(path, table.unique("key", maintain_order=True))
    return table.drop("key"), len(pending)


def uncached(path: str | os.PathLike | None, keys: Mapping[Item, str]) -> list[Item]:
    """The items of ``keys`` (one per distinct key) that :func:`cached_pairs` on the cache at ``path`` will compute:
    those whose key it lacks, every item when it cannot be read (what a run costs, before running it). A cache
    whose fields turn out to differ from the run's is only found when the first result is computed."""
    order = pl.DataFrame({"key": list(keys.values())}, schema={"key": pl.String})
    cached = _read(Path(path), order, quiet=True) if path is not None else None
    known = set(cached["key"]) if cached is not None else set()
    return [item for key, item in _distinct(keys).items() if key not in known]


def cached_arrays(
    folder: str | os.PathLike | None,
    keys: Mapping[Item, str],
    compute: Callable[[Item], Mapping[str, np.ndarray]],
    *,
    desc: str = "arrays",
    progress: bool = True,
    unit: str = "item",
) -> tuple[dict[Item, dict[str, np.ndarray]], int]:
    """Results of arrays too large for a row of :func:`cached_pairs`, per item of ``keys``, from ``folder`` or from
    ``compute``.

    Each result is ``<folder>/<key>.<name>.npy`` per array and ``<key>.json`` naming the arrays, written last (each
    file atomically), so a result is either whole or absent. What is read back is checked: a result whose files
    are missing, damaged or of another shape than its ``.npy`` header says is computed again, with a warning.

    Args:
        folder: the cache folder (created when missing; it holds nothing else); None: no cache (computed, kept in
            memory).
        keys: item -> its key (see :func:`digest`); items with equal keys share a result.
        compute: called with one item whose key is not cached (one item per key); returns name -> array.
        desc, progress, unit: the progress bar (items computed).

    Returns:
        (item -> name -> array, every item of ``keys``: read memory-mapped from the folder, the computed ones too,
        so a result reads the same whether it was cached or not; the number of items computed). Files of keys not
        in ``keys`` are removed.
    """
    from tqdm.auto import tqdm

    root = Path(folder) if folder is not None else None
    todo = _distinct(keys)
    got: dict[str, dict[str, np.ndarray]] = {}
    if root is not None:
        for key in todo:
            if (found := _read_arrays(root, key)) is not None:
                got[key] = found
    pending = [(key, item) for key, item in todo.items() if key not in got]
    with tqdm(total=len(pending), desc=desc, unit=unit, disable=not (progress and pending), mininterval=1.0) as bar:
        for key, item in pending:
            arrays = {name: np.asarray(value) for name, value in compute(item).items()}
            if root is None:
                got[key] = arrays
            else:
                for name, value in arrays.items():
                    write_npy(root / f"{key}.{name}.npy", value)
                write_json(root / f"{key}.json", {"arrays": sorted(arrays)})
                got[key] = _read_arrays(root, key, quiet=True)  # type: ignore[assignment]
            bar.update(1)
    if root is not None and root.exists():
        for stale in root.iterdir():
            if stale.is_file() and stale.name.partition(".")[0] not in todo:
                stale.unlink()
    return {item: got[key] for item, key in keys.items()}, len(pending)


def uncached_arrays(folder: str | os.PathLike | None, keys: Mapping[Item, str]) -> list[Item]:
    """The items of ``keys`` (one per distinct key) that :func:`cached_arrays` on ``folder`` will compute."""
    todo = _distinct(keys)
    if folder is None:
        return list(todo.values())
    return [item for key, item in todo.items() if _read_arrays(Path(folder), key, quiet=True) is None]


def _distinct(keys: Mapping[Item, str]) -> dict[str, Item]:
    """key -> the first item with that key."""
    todo: dict[str, Item] = {}
    for item, key in keys.items():
        todo.setdefault(key, item)
    return todo


def _read_arrays(root: Path, key: str, *, quiet: bool = False) -> dict[str, np.ndarray] | None:
    """The arrays of one :func:`cached_arrays` result, memory-mapped (None: not cached, or not readable)."""
    index = root / f"{key}.json"
    if not index.exists():
        return None
    try:
        names = read_json(index)["arrays"]
        return {name: np.load(root / f"{key}.{name}.npy", mmap_mode="r", allow_pickle=False) for name in names}
    except (OSError, ValueError, KeyError, TypeError) as err:
        if not quiet:
            _warn(index, _unreadable(err))
        return None


def _concat(cached: pl.DataFrame | None, parts: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(([cached] if cached is not None else []) + parts, how="vertical_relaxed")


def _read(path: Path, order: pl.DataFrame, *, quiet: bool = False) -> pl.DataFrame | None:
    """The cached rows of the keys in ``order`` (None: no usable cache, or none of these keys)."""
    if not path.exists():
        return None
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # polars' errors for a damaged file have no common base beyond Exception
        if not quiet:
            _warn(path, _unreadable(err))
        return None
    if frame.schema.get("key") != pl.String or frame["key"].null_count():
        if not quiet:
            _warn(path, "it has no string 'key' column")
        return None
    frame = frame.join(order, on="key", how="semi")
    return frame if len(frame) else None


def _describe(schema: pl.Schema) -> str:
    return "(" + ", ".join(f"{name}: {dtype}" for name, dtype in schema.items() if name != "key") + ")"


def _unreadable(err: Exception) -> str:
    return f"it cannot be read ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"


def _warn(path: Path, why: str) -> None:
    print(f"warning: pair cache {path}: {why}; computing its pairs again", file=sys.stderr)
