"""Dataset files written byte by byte for tests: tiny Fashion-MNIST IDX sets and image folders."""

from __future__ import annotations

import gzip
import struct

import numpy as np


def _idx(code_shape_values) -> bytes:
    shape, values = code_shape_values
    head = struct.pack(">BBBB", 0, 0, 0x08, len(shape)) + b"".join(struct.pack(">I", d) for d in shape)
    return head + bytes(values)


def write_fashion_mnist(folder, n_train=20, n_test=6, *, compress=True):
    """Tiny 4x4 'Fashion-MNIST': image k (train then test) has every pixel k * 7 % 256, label k % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    total = n_train + n_test
    pix = [[(k * 7 + p) % 256 for p in range(16)] for k in range(total)]
    labels = [(3 * k + 1) % 10 for k in range(total)]
    parts = {
        "train-images-idx3-ubyte": ((n_train, 4, 4), [v for k in range(n_train) for v in pix[k]]),
        "train-labels-idx1-ubyte": ((n_train,), labels[:n_train]),
        "t10k-images-idx3-ubyte": ((n_test, 4, 4), [v for k in range(n_train, total) for v in pix[k]]),
        "t10k-labels-idx1-ubyte": ((n_test,), labels[n_train:]),
    }
    for stem, content in parts.items():
        raw = _idx(content)
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return np.array(pix, np.uint8).reshape(total, 4, 4), np.array(labels)


def write_image_folder(root, counts: dict[str, int], *, size: tuple[int, int] = (6, 5), seed: int = 0) -> None:
    """One sub-folder of random RGB PNGs (``size`` = (width, height)) per class of ``counts`` (class -> images)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for cls, count in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").save(root / cls / f"{i}.png")
