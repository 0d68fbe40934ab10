"""A timm-style model's inputs: decoded once per dataset and configuration, and bit for bit what timm's own
evaluation transform gives image by image."""

from __future__ import annotations

import pytest
import torch

from tests.datafiles import write_image_folder
from zooscope.config import DatasetSpec
from zooscope.data.datasets import load_dataset
from zooscope.data.transforms import iter_batches


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "images"
    write_image_folder(root, {"a": 5, "b": 4}, size=(40, 31))
    return load_dataset(DatasetSpec(source=f"imagefolder:{root}", seed=0, eval_size=0.3, calibration_size=0.2)), tmp_path


def _pre(channels: int, crop_mode: str, size: int = 24, mean: float = 0.4) -> dict:
    return {"kind": "timm", "input_size": [channels, size, size], "interpolation": "bicubic", "mean": [mean] * channels,
            "std": [0.3] * channels, "crop_pct": 0.875, "crop_mode": crop_mode}


@pytest.mark.parametrize("crop_mode", ["center", "squash", "border"])
@pytest.mark.parametrize("channels", [3, 1])
def test_batches_equal_timms_transform_image_by_image(folder, crop_mode, channels):
    from timm.data import create_transform

    dataset, _ = folder
    pre = _pre(channels, crop_mode)
    timm_tf = create_transform(input_size=(channels, 24, 24), interpolation="bicubic", mean=(0.4,) * channels,
                               std=(0.3,) * channels, crop_pct=0.875, crop_mode=crop_mode, is_training=False)
    positions = dataset.split("eval")
    got = torch.cat(list(iter_batches(dataset, positions, pre, batch_size=2)))
    want = torch.stack([timm_tf(dataset.pil(int(p)).convert("RGB" if channels == 3 else "L")) for p in positions])
    assert torch.equal(got, want)


def test_models_sharing_a_configuration_share_one_decode(folder):
    """Two normalisations of one size and crop: one memo; another size: a second one; every split reads them."""
    dataset, tmp = folder
    memos = lambda: sorted((tmp / "cache" / "inputs").glob("*.npy"))  # noqa: E731
    for mean in (0.4, 0.5):
        for split in ("train", "eval"):
            list(iter_batches(dataset, dataset.split(split), _pre(3, "center", mean=mean), batch_size=4))
    assert len(memos()) == 1
    list(iter_batches(dataset, dataset.split("eval"), _pre(3, "center", size=20), batch_size=4))
    assert len(memos()) == 2
