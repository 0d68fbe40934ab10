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


def _count_decodes(monkeypatch) -> list[int]:
    from zooscope.data.datasets import Dataset

    calls, pil = [], Dataset.pil
    monkeypatch.setattr(Dataset, "pil", lambda self, pos: calls.append(pos) or pil(self, pos))
    return calls


def test_models_sharing_a_configuration_share_one_decode(folder, monkeypatch):
    """Two normalisations of one size and crop, every split: each image decoded once; another size: once more."""
    dataset, tmp = folder
    calls = _count_decodes(monkeypatch)
    for mean in (0.4, 0.5):
        for split in ("train", "calibration", "eval"):
            list(iter_batches(dataset, dataset.split(split), _pre(3, "center", mean=mean), batch_size=4))
    assert sorted(calls) == list(range(9))
    assert len(list((tmp / "cache" / "inputs").glob("*.npy"))) == 1
    list(iter_batches(dataset, dataset.split("eval"), _pre(3, "center", size=20), batch_size=4))
    assert sorted(calls) == sorted(list(range(9)) * 2)


def test_only_the_splits_images_are_decoded_and_a_cache_that_cannot_be_written_decodes_once_per_process(
        tmp_path, monkeypatch):
    """An in-memory dataset (digits) with a pool larger than its splits: only the split samples are decoded; with
    $ZOOSCOPE_CACHE a file (no folder can be made there), once for every split and model of the process."""
    from timm.data import create_transform

    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("ZOOSCOPE_CACHE", str(tmp_path / "not-a-folder"))
    dataset = load_dataset(DatasetSpec(source="digits", seed=0, train_size=40, eval_size=30, calibration_size=20))
    in_splits = sorted(int(p) for split in dataset.splits.values() for p in split)
    assert len(in_splits) < len(dataset.labels)
    calls = _count_decodes(monkeypatch)
    pre = _pre(1, "center", size=16)
    got = {split: torch.cat(list(iter_batches(dataset, dataset.split(split), pre, batch_size=7)))
           for split in ("train", "eval")}
    assert sorted(calls) == in_splits
    timm_tf = create_transform(input_size=(1, 16, 16), interpolation="bicubic", mean=(0.4,), std=(0.3,),
                               crop_pct=0.875, crop_mode="center", is_training=False)
    want = torch.stack([timm_tf(dataset.pil(int(p)).convert("L")) for p in dataset.split("eval")])
    assert torch.equal(got["eval"], want)
    with pytest.raises(ValueError, match="outside the dataset's splits"):
        outside = next(p for p in range(len(dataset.labels)) if p not in set(in_splits))
        list(iter_batches(dataset, torch.tensor([outside]).numpy(), pre, batch_size=1))
