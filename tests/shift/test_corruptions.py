"""Corruptions: each one's defining property checked on images made for it, against numpy, PIL or a hand-worked value."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from zooscope.shift import CORRUPTIONS, affine, corrupt
from zooscope.vocab import CORRUPTIONS as NAMES
from zooscope.vocab import SEVERITIES

RNG = np.random.default_rng(0)
GREY = (RNG.random((6, 28, 28)) * 255).astype(np.uint8)
RGB = (RNG.random((3, 32, 32, 3)) * 255).astype(np.uint8)


def test_the_registry_is_the_vocabulary():
    assert tuple(CORRUPTIONS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_corruption_is_seeded_keeps_shape_and_changes_the_images(name):
    for images in (GREY, RGB, GREY[:, :8, :8]):
        out = corrupt(images, name=name, severity=3, seed=1)
        assert out.shape == images.shape and out.dtype == np.uint8
        assert np.array_equal(out, corrupt(images, name=name, severity=3, seed=1))
        assert not np.array_equal(out, images)


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "contrast",
                                  "brightness", "pixelate"])
def test_a_higher_severity_moves_the_images_further(name):
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(GREY.astype(float), sigma=(0, 2, 2))  # structure at several scales, as photos have
    smooth = ((smooth - smooth.min()) / np.ptp(smooth) * 200 + 20).astype(np.uint8)
    moved = [np.abs(corrupt(smooth, name=name, severity=s, seed=0).astype(float) - smooth).mean() for s in SEVERITIES]
    assert all(a < b for a, b in zip(moved, moved[1:])), moved


def test_noise_draws_depend_on_the_seed_and_the_severity_not_only_on_the_images():
    a = corrupt(GREY, name="gaussian_noise", severity=2, seed=0)
    assert not np.array_equal(a, corrupt(GREY, name="gaussian_noise", severity=2, seed=1))


def test_gaussian_noise_has_imagenet_c_standard_deviation():
    grey = np.full((40, 64, 64), 128, np.uint8)  # mid-grey: no clipping within 3 sigma at severity 1
    residual = corrupt(grey, name="gaussian_noise", severity=1, seed=0).astype(float) / 255 - 128 / 255
    assert residual.std() == pytest.approx(0.08, rel=0.02)
    assert abs(residual.mean()) < 0.002


def test_contrast_and_brightness_by_hand():
    img = np.zeros((1, 2, 2), np.uint8)
    img[0, 0] = 255  # half white, half black: mean 0.5
    # contrast at severity 1 (c = 0.4): 0.5 +- 0.5 * 0.4 = 0.3 and 0.7 -> 76.5 and 178.5, rounded half to even
    assert corrupt(img, name="contrast", severity=1, seed=0).tolist() == [[[178, 178], [76, 76]]]
    # brightness at severity 2 (+0.2 = 51 levels), clipped at white
    assert corrupt(img, name="brightness", severity=2, seed=0).tolist() == [[[255, 255], [51, 51]]]


def test_jpeg_is_pils_own_encoding_at_the_severitys_quality():
    out = corrupt(GREY[:2], name="jpeg", severity=1, seed=0)
    for got, img in zip(out, GREY[:2]):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=25)
        assert np.array_equal(got, np.asarray(Image.open(buf)))


def test_affine_rotation_by_a_quarter_turn_is_numpys_rot90():
    img = (RNG.random((2, 9, 9)) * 255).astype(np.uint8)  # odd side: the centre is a pixel
    quarter = np.array([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]] * 2)
    assert np.array_equal(affine(img, quarter), np.rot90(img, 1, axes=(1, 2)))


def test_affine_translation_by_whole_pixels_shifts_and_fills_black():
    img = (RNG.random((1, 7, 7)) * 254 + 1).astype(np.uint8)
    moved = affine(img, np.array([[[1.0, 0.0, -2.0], [0.0, 1.0, 1.0]]]))  # right by 2, up by 1
    expected = np.zeros_like(img)
    expected[0, :-1, 2:] = img[0, 1:, :-2]
    assert np.array_equal(moved, expected)


def test_bad_requests_are_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        corrupt(GREY, name="fog", severity=1, seed=0)
    with pytest.raises(ValueError, match="severity must be one of"):
        corrupt(GREY, name="contrast", severity=6, seed=0)
    with pytest.raises(ValueError, match=r"expected uint8 images"):
        corrupt(GREY.astype(np.float32), name="contrast", severity=1, seed=0)

