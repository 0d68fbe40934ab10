"""Per-pair results kept across runs, keyed by everything they were computed from.

A pairwise stage keys each pair by a digest of the two models' artifact files (their sha256), the stage
settings, and the source of the library modules that compute the numbers; a result whose key is
unchanged is reused. Adding one model to a zoo of N therefore computes N new pairs, and editing the code
that computes a number recomputes it. The cache is one parquet table (a ``key`` column, then the
result's fields) that the stage declares as a DVC output with ``persist: true``; it is rewritten
atomically with the current zoo's pairs only.

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
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl

from zooscope.io import sha256_file, write_parquet

__all__ = ["digest", "code_digest", "cached_pairs"]

Pair = tuple[str, str]


def digest(*parts: Any) -> str:
    """sha256 (hex) of JSON-serialisable parts (strings, numbers, lists, mappings), order-sensitive."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def code_digest(*modules: ModuleType) -> str:
    """Digest of the modules' source files: part of a key, so changing how a number is computed invalidates it."""
    return digest(*(sha256_file(inspect.getfile(m)) for m in modules))


def cached_pairs(
    path: str | os.PathLike,
    keys: Mapping[Pair, str],
    compute: Callable[[list[Pair]], Mapping[str, Any]],
    *,
    chunk: int | None = None,
    desc: str = "pairs",
    progress: bool = True,
) -> tuple[pl.DataFrame, int]:
    """The results of every pair of ``keys``, from the cache at ``path`` or, when missing, from ``compute``.

    Args:
        path: the cache (parquet); absent means empty.
        keys: pair (model_a, model_b) -> its key (see :func:`digest`); pairs with equal keys share a result.
        compute: called with the pairs whose key is not cached (one pair per key), ``chunk`` at a time (all
            at once for None); returns the results as columns, field -> one value per pair (a sequence, a
            1-D array, or a 2-D array of one vector per pair).
        chunk: pairs per call; the cache is written after every call, so an interrupted run keeps what
            it computed. desc, progress: the progress bar (pairs computed).

    Returns:
        (one row per pair of ``keys``, in order, with the result fields; the number of pairs computed).
        The cache is rewritten holding exactly these results.
    """
    from tqdm.auto import tqdm

    path = Path(path)
    order = pl.DataFrame({"key": list(keys.values())}, schema={"key": pl.String})
    cached = _read(path, order)
    todo: dict[str, Pair] = {}
    for pair, key in keys.items():
        todo.setdefault(key, pair)
    known = set(cached["key"]) if cached is not None else set()
    pending = [(key, pair) for key, pair in todo.items() if key not in known]
    parts: list[pl.DataFrame] = []
    step = chunk or max(len(pending), 1)
    with tqdm(total=len(pending), desc=desc, unit="pair", disable=not (progress and pending), mininterval=1.0) as bar:
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
            write_parquet(path, _concat(cached, parts).unique("key", maintain_order=True))
            bar.update(len(part))
            start += len(part)
    table = order
    if cached is not None or parts:
        table = order.join(_concat(cached, parts), on="key", how="left", maintain_order="left")
    write_parquet(path, table.unique("key", maintain_order=True))
    return table.drop("key"), len(pending)


def _concat(cached: pl.DataFrame | None, parts: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(([cached] if cached is not None else []) + parts, how="vertical_relaxed")


def _read(path: Path, order: pl.DataFrame) -> pl.DataFrame | None:
    """The cached rows of the keys in ``order`` (None: no usable cache, or none of these keys)."""
    if not path.exists():
        return None
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # polars' errors for a damaged file have no common base beyond Exception
        _warn(path, f"it cannot be read ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})")
        return None
    if frame.schema.get("key") != pl.String or frame["key"].null_count():
        _warn(path, "it has no string 'key' column")
        return None
    frame = frame.join(order, on="key", how="semi")
    return frame if len(frame) else None


def _describe(schema: pl.Schema) -> str:
    return "(" + ", ".join(f"{name}: {dtype}" for name, dtype in schema.items() if name != "key") + ")"


def _warn(path: Path, why: str) -> None:
    print(f"warning: pair cache {path}: {why}; computing its pairs again", file=sys.stderr)
