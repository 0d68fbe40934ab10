"""Per-pair results kept across runs, keyed by everything they were computed from.

A pairwise stage keys each pair by a digest of the two models' artifact files (their sha256), the stage
settings, and the source of the library modules that compute the numbers; a result whose key is
unchanged is reused. Adding one model to a zoo of N therefore computes N new pairs, and editing the code
that computes a number recomputes it. The cache is one parquet table (a ``key`` column, then the
result's fields) that the stage declares as a DVC output with ``persist: true``; it is rewritten
atomically with the current zoo's pairs only.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
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
    parts = [pl.read_parquet(path).join(order, on="key", how="semi")] if path.exists() else []
    known = set(parts[0]["key"]) if parts else set()
    todo: dict[str, Pair] = {}
    for pair, key in keys.items():
        if key not in known:
            todo.setdefault(key, pair)
    pending = list(todo.items())
    step = chunk or max(len(pending), 1)
    with tqdm(total=len(pending), desc=desc, unit="pair", disable=not (progress and pending), mininterval=1.0) as bar:
        for start in range(0, len(pending), step):
            part = pending[start:start + step]
            parts.append(pl.DataFrame({"key": [key for key, _ in part], **compute([pair for _, pair in part])}))
            write_parquet(path, pl.concat(parts, how="vertical_relaxed").unique("key", maintain_order=True))
            bar.update(len(part))
    table = order
    if parts:
        table = order.join(pl.concat(parts, how="vertical_relaxed"), on="key", how="left", maintain_order="left")
    write_parquet(path, table.unique("key", maintain_order=True))
    return table.drop("key"), len(todo)
