"""Arrays a stage would otherwise rebuild from the same inputs every time (a dataset's decoded images, the
resized crops a model is fed), memoised as ``.npy`` files under ``$ZOOSCOPE_CACHE`` (default ``~/.cache/zooscope``)
and read back memory-mapped. A memo is keyed by everything its array depends on (the input files' paths, sizes and
modification times, the settings, the versions of the libraries that compute it), so a changed input builds a new
one; it is not a DVC output, nothing evicts old ones, and deleting the folder only costs the time to rebuild."""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["file_key", "file_stat", "files_key", "memoised", "memoised_rows"]

#: Arrays built in this process where the cache could not be written (a read-only home, a full disk), by file.
_IN_PROCESS: dict[Path, np.ndarray] = {}


def file_stat(path: str) -> tuple[int, int]:
    """(size in bytes, modification time in ns) of ``path``."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def file_key(path: Path) -> str:
    """What a memoised array read from ``path`` depends on: its absolute path, size and modification time."""
    return f"{path.resolve()}|{'|'.join(map(str, file_stat(str(path))))}"


def files_key(paths: Sequence[str]) -> str:
    """:func:`file_key` of many files (absolute paths), in order, as one string."""
    return repr([(os.path.abspath(p), *file_stat(p)) for p in paths])


def _cache_file(kind: str, key: str) -> Path:
    digest = hashlib.sha1(key.encode()).hexdigest()[:20]
    return Path(os.environ.get("ZOOSCOPE_CACHE", Path.home() / ".cache" / "zooscope")) / kind / f"{digest}.npy"


def _read(cache: Path) -> np.ndarray | None:
    if cache in _IN_PROCESS:
        return _IN_PROCESS[cache]
    if cache.exists():
        try:
            return np.load(cache, mmap_mode="r")
        except (OSError, ValueError):  # a damaged cache entry: rebuild it
            pass
    return None


def _built_once(cache: Path, build: Callable[[Path], np.ndarray]) -> np.ndarray:
    """The memo at ``cache``, built by ``build(cache)`` (which writes it) by one process at a time: a process that
    waited for another's build reads its result. Where the cache cannot be written, built in memory, once per
    process."""
    found = _read(cache)
    if found is not None:
        return found
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        lock = open(cache.with_suffix(".lock"), "a")  # noqa: SIM115 - held for the build below
    except OSError:
        return _IN_PROCESS.setdefault(cache, build(None))
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _read(cache)
        if found is not None:
            return found
        try:
            return build(cache)
        except OSError:  # a full disk while a memo was written in place: build it again, in memory
            return _IN_PROCESS.setdefault(cache, build(None))


def memoised(kind: str, key: str, build: Callable[[], np.ndarray]) -> np.ndarray:
    """``build()``'s array, memoised as an uncompressed ``.npy`` under ``$ZOOSCOPE_CACHE``/``kind`` by the sha1 of
    ``key`` (which must name everything the array depends on); read back memory-mapped (read-only), so a stage
    pays only for the rows it touches. A damaged entry is rebuilt; where the cache cannot be written, the array is
    built once per process."""
    from zooscope.io import write_npy

    def write(cache: Path | None) -> np.ndarray:
        array = build()
        if cache is not None:
            try:
                write_npy(cache, array)
            except OSError:  # a full disk: keep what was built, in this process
                _IN_PROCESS[cache] = array
        return array

    return _built_once(_cache_file(kind, key), write)


def memoised_rows(kind: str, key: str, *, shape: tuple[int, ...], dtype: np.dtype,
                  fill: Callable[[np.ndarray], None]) -> np.ndarray:
    """Like :func:`memoised` for an array too large to build in memory: ``fill(out)`` writes every row of ``out``
    [shape], a memory-mapped file beside the memo that becomes it (renamed) once filled."""
    from zooscope.io import atomic_path

    def write(cache: Path | None) -> np.ndarray:
        if cache is None:
            out = np.empty(shape, dtype)
            fill(out)
            return out
        with atomic_path(cache, suffix=".npy") as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            fill(out)
            out.flush()
            del out
        return np.load(cache, mmap_mode="r")

    return _built_once(_cache_file(kind, key), write)
