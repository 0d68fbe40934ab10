"""Reader for the IDX format of (Fashion-)MNIST (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS").

Header: two zero bytes, a type code, the number of dimensions, then one big-endian uint32 per dimension;
the data follows in C order, big-endian. Files may be gzip-compressed (Debian ships ``*.gz``).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["read_idx"]

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally ``.gz``) into a native-endian array of its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"{path}: a damaged or truncated gzip file ({err or type(err).__name__}); "
                         "reinstall or re-download it") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (expected two zero bytes, a type code and a rank)")
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x}; known: {', '.join(f'0x{c:02x}' for c in _DTYPES)}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header (rank {ndim} needs {header} bytes, the file has {len(raw)})")
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = np.dtype(_DTYPES[code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX header declares shape {shape} ({expected} bytes) but the file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
