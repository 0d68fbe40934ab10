"""Artifact formats and atomic writes.

Every artifact is written to a temporary file in the destination folder and then renamed into
place with ``os.replace``, so a killed stage never leaves a half-written file behind. A temporary file that
a kill left behind (``.<name>.<random>.tmp*``) is removed by the next write of the same file, and DVC never
hashes one (``.dvcignore``). A full disk is reported as :class:`DiskFullError`, naming the file; what was
already written stays intact.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DiskFullError",
    "atomic_path",
    "tensors_digest",
    "write_json",
    "read_json",
    "write_npy",
    "write_parquet",
    "write_csv",
    "write_safetensors",
    "sha256_file",
]


_UMASK = os.umask(0)
os.umask(_UMASK)


class DiskFullError(OSError):
    """An artifact could not be written because its file system is full; the message names the file."""


def _disk_full(err: BaseException, folder: Path) -> bool:
    """Whether a writer's error means the file system is full. Writers say so differently: errno ENOSPC
    (Python), "os error 28" (polars, safetensors), or a short write (``np.save``), hence the free-space test."""
    if getattr(err, "errno", None) == errno.ENOSPC or "No space left on device" in str(err) or "os error 28" in str(err):
        return True
    try:
        return isinstance(err, OSError) and shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name ends with ``suffix`` (writers such as ``np.save`` append an extension otherwise).
    Temporary files of ``path`` that an earlier, killed run left behind are removed first.

    Raises:
        DiskFullError: the file system is full (``path`` keeps its earlier contents, if any).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        stale.unlink(missing_ok=True)
    tmp_path = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    except Exception as err:
        if _disk_full(err, path.parent):
            free = shutil.disk_usage(path.parent).free
            raise DiskFullError(f"no space left on the device to write {path} ({free} bytes free); "
                                "free some space and re-run: what was written before is intact") from None
        raise
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON artifact, naming the file in the error when it is missing or malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: artifact not found; run the stage that produces it first") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write one array as ``.npy`` (memory-mappable with ``np.load(mmap_mode='r')``), atomically."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.ascontiguousarray(array), allow_pickle=False)


def write_parquet(path: str | os.PathLike, frame: Any) -> None:
    """Write a polars DataFrame as parquet, atomically."""
    with atomic_path(path, suffix=".parquet") as tmp:
        frame.write_parquet(tmp)


def write_csv(path: str | os.PathLike, frame: Any) -> None:
    """Write a polars DataFrame as CSV (the data of a DVC plot), atomically."""
    with atomic_path(path, suffix=".csv") as tmp:
        frame.write_csv(tmp)


def write_safetensors(path: str | os.PathLike, tensors: dict[str, Any], *, metadata: dict[str, str] | None = None) -> None:
    """Write a ``{name: torch.Tensor}`` or ``{name: numpy.ndarray}`` mapping as safetensors, atomically and
    byte-reproducibly. NumPy arrays are written without importing torch (seconds per stage process).

    safetensors serialises its metadata map in a per-process random order, so ``metadata`` is stored
    as one key-sorted JSON string under the key ``zooscope``: equal inputs give equal files (and DVC hashes).
    """
    header = {"zooscope": json.dumps(metadata, sort_keys=True)} if metadata else None
    if all(isinstance(v, np.ndarray) for v in tensors.values()):
        from safetensors.numpy import save_file

        contiguous = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    else:
        from safetensors.torch import save_file

        contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(contiguous, str(tmp), metadata=header)


def tensors_digest(tensors: dict[str, Any]) -> str:
    """sha256 over a state dict's names, dtypes, shapes and bytes, in name order (torch tensors or numpy arrays): the
    same weights give the same digest whatever file they were written to."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name]
        array = value.detach().cpu().contiguous().numpy() if hasattr(value, "detach") else np.ascontiguousarray(value)
        h.update(f"{name}|{array.dtype}|{array.shape}|".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
