"""Synthetic corruptions of images, seeded, at five severities (docs/science.md section 9).

The families and most of their severity constants follow ImageNet-C (Hendrycks & Dietterich, ICLR 2019: the
noises, contrast, brightness, JPEG, pixelate) and MNIST-C (Mu & Gilmer, 2019: rotate, shear, translate), as they
apply to small images of one or three channels. Constants in pixels are given for a 28-pixel side and scale with
the image (a blur of 1 pixel at 28 is one of 8 pixels at 224). Each corruption is a pure function of the images,
the severity and a seeded generator, so a shifted set is the same wherever and whenever it is made.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import numpy as np

from zooscope.vocab import SEVERITIES

__all__ = ["CORRUPTIONS", "corrupt", "affine"]

_REF_SIDE = 28  # pixel constants below are for a 28-pixel image side

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def _unit(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float64) / 255.0


def _uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _side(images: np.ndarray) -> int:
    return min(images.shape[1], images.shape[2])


def _gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = (0.08, 0.12, 0.18, 0.26, 0.38)[severity - 1]
    x = _unit(images)
    return _uint8(x + rng.normal(0.0, sigma, size=x.shape))


def _shot_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    photons = (60, 25, 12, 5, 3)[severity - 1]
    return _uint8(rng.poisson(_unit(images) * photons) / photons)


def _impulse_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    amount = (0.03, 0.06, 0.09, 0.17, 0.27)[severity - 1]
    out = images.copy()
    hit = rng.random(images.shape) < amount
    out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255).astype(np.uint8)
    return out


def _gaussian_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    sigma = (0.5, 0.75, 1.0, 1.5, 2.0)[severity - 1] * _side(images) / _REF_SIDE
    spatial = (0, sigma, sigma) + ((0,) if images.ndim == 4 else ())
    return _uint8(gaussian_filter(_unit(images), sigma=spatial, mode="reflect"))


def _contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = (0.4, 0.3, 0.2, 0.1, 0.05)[severity - 1]
    x = _unit(images)
    means = x.mean(axis=tuple(range(1, x.ndim)), keepdims=True)
    return _uint8((x - means) * c + means)


def _brightness(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    # ImageNet-C adds c to the value channel in HSV; for one channel (and as an approximation for three) add c to
    # every channel, which is what a value shift does to a grey pixel.
    c = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]
    return _uint8(_unit(images) + c)


def _per_image(images: np.ndarray, fn: Callable) -> np.ndarray:
    from PIL import Image

    out = np.empty_like(images)
    for i, img in enumerate(images):
        out[i] = np.asarray(fn(Image.fromarray(img), i))
    return out


def _jpeg(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    quality = (25, 18, 15, 10, 7)[severity - 1]

    def encode(img, _):
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        return Image.open(buf).convert(img.mode)

    return _per_image(images, encode)


def _pixelate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    c = (0.5, 0.4, 0.33, 0.25, 0.2)[severity - 1]  # coarser than ImageNet-C's (0.6 to 0.25): 28 px needs it
    h, w = images.shape[1:3]
    small = (max(1, int(w * c)), max(1, int(h * c)))
    return _per_image(images, lambda img, _: img.resize(small, Image.BOX).resize((w, h), Image.BOX))


def affine(images: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Each image resampled through its own affine map about its centre (bilinear; outside the image: black).

    Args:
        images: uint8 [n, H, W] or [n, H, W, 3].
        matrices: float [n, 2, 3]; output pixel (x, y) (pixel units, origin at the image centre) reads the input at
            ``matrices[i] @ (x, y, 1)``.
    """
    from PIL import Image

    h, w = images.shape[1:3]
    cx, cy = w / 2.0, h / 2.0  # PIL's coordinates put pixel i's centre at i + 0.5

    def warp(img, i):
        (a, b, c), (d, e, f) = matrices[i]
        # PIL maps output (x, y) to input (a x + b y + c, ...) with the origin at the top-left corner
        coeffs = (a, b, c + cx - a * cx - b * cy, d, e, f + cy - d * cx - e * cy)
        return img.transform((w, h), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=0)

    return _per_image(images, warp)


def _signs(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.where(rng.random(n) < 0.5, -1.0, 1.0)


def _rotate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    degrees = (10, 20, 30, 40, 50)[severity - 1]
    t = np.deg2rad(degrees * _signs(len(images), rng))
    cos, sin = np.cos(t), np.sin(t)
    zero = np.zeros_like(t)
    return affine(images, np.stack([np.stack([cos, -sin, zero], 1), np.stack([sin, cos, zero], 1)], 1))


def _shear(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    s = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1] * _signs(len(images), rng)
    one, zero = np.ones_like(s), np.zeros_like(s)
    return affine(images, np.stack([np.stack([one, s, zero], 1), np.stack([zero, one, zero], 1)], 1))


def _translate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    shift = (1, 2, 3, 4, 5)[severity - 1] * _side(images) / _REF_SIDE
    angle = rng.uniform(0, 2 * np.pi, len(images))
    dx, dy = np.rint(shift * np.cos(angle)), np.rint(shift * np.sin(angle))
    one, zero = np.ones_like(dx), np.zeros_like(dx)
    return affine(images, np.stack([np.stack([one, zero, -dx], 1), np.stack([zero, one, -dy], 1)], 1))


#: name -> corruption(images uint8 [n, H, W(, 3)], severity 1..5, generator) -> uint8 of the same shape; the
#: names are zooscope.vocab.CORRUPTIONS, in its order (the schema checks a study's names against it)
CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "gaussian_blur": _gaussian_blur,
    "contrast": _contrast,
    "brightness": _brightness,
    "jpeg": _jpeg,
    "pixelate": _pixelate,
    "rotate": _rotate,
    "shear": _shear,
    "translate": _translate,
}


def corrupt(images: np.ndarray, *, name: str, severity: int, seed: int) -> np.ndarray:
    """``images`` under corruption ``name`` at ``severity``, drawn from a generator seeded by (seed, name, severity).

    Args:
        images: uint8 [n, H, W] (one channel) or [n, H, W, 3].

    Returns:
        uint8 of the same shape: the same images give the same result for the same seed, name and severity.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"corruption {name}: severity must be one of {list(SEVERITIES)}, got {severity!r}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise ValueError(f"corruption {name}: expected uint8 images [n, H, W] or [n, H, W, 3], got {images.dtype} "
                         f"{list(images.shape)}")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), severity])
    return CORRUPTIONS[name](images, severity, rng)
