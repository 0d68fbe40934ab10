"""Arrays a stage would otherwise rebuild from the same inputs every time (a dataset's decoded images, the
resized crops a model is fed), memoised as ``.npy`` files under ``$ZOOSCOPE_CACHE`` (default ``~/.cache/zooscope``)
and read back memory-mapped. A memo is keyed by everything its array depends on, so it is never stale; it is not a
DVC output, and deleting the folder only costs the time to rebuild."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["file_key", "file_stat", "memoised"]


def file_stat(path: str) -> tuple[int, int]:
    """(size in bytes, modification time in ns) of ``path``."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def file_key(path: Path) -> str:
    """What a memoised array read from ``path`` depends on: its absolute path, size and modification time."""
    return f"{path.resolve()}|{'|'.join(map(str, file_stat(str(path))))}"


def memoised(kind: str, key: str, build: Callable[[], np.ndarray]) -> np.ndarray:
    """``build()``'s array, memoised as an uncompressed ``.npy`` under ``$ZOOSCOPE_CACHE``/``kind`` by the sha1 of
    ``key`` (which must name everything the array depends on); read back memory-mapped (read-only), so a stage
    pays only for the rows it touches. A damaged entry is rebuilt; a cache that cannot be written is done without.
    """
    import hashlib

    from zooscope.io import write_npy

    digest = hashlib.sha1(key.encode()).hexdigest()[:20]
    cache = Path(os.environ.get("ZOOSCOPE_CACHE", Path.home() / ".cache" / "zooscope")) / kind / f"{digest}.npy"
    if cache.exists():
        try:
            return np.load(cache, mmap_mode="r")
        except (OSError, ValueError):  # a damaged cache entry: rebuild it
            pass
    array = build()
    try:
        write_npy(cache, array)
    except OSError:  # a read-only home (or a full disk): work without the cache
        pass
    return array
