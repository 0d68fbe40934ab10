"""Each model source through its real loading code, with local files standing in for the hubs."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from zooscope.config import ModelSpec
from zooscope.zoo.embedding import embedding_fn
from zooscope.io import write_safetensors
from zooscope.zoo.safeload import UnsafeCheckpointError, load_state_dict_file
from zooscope.zoo.sources import fetch_model, load_network

TAGS = {"seed": "unknown", "hyperparameters": "h", "architecture": "a", "framework": "f", "data": "d"}


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.inference_mode():
        ea, la = embedding_fn(a.eval())(x)
        eb, lb = embedding_fn(b.eval())(x)
    torch.testing.assert_close(ea, eb, rtol=0, atol=0)
    torch.testing.assert_close(la, lb, rtol=0, atol=0)


def _roundtrip(fetched, tmp_path: Path) -> torch.nn.Module:
    """Save the fetched weights as the fetch stage does and rebuild from the card's builder."""
    path = tmp_path / "weights.safetensors"
    write_safetensors(path, {k: v.clone() for k, v in fetched.model.state_dict().items()})
    return load_network(json.loads(json.dumps(fetched.builder)), str(path))


def test_timm_source_loads_a_local_file_through_the_pretrained_overlay(tmp_path, digits):
    import timm

    torch.manual_seed(0)
    original = timm.create_model("test_resnet.r160_in1k", pretrained=False).eval()
    weights = tmp_path / "orig.safetensors"
    write_safetensors(weights, original.state_dict())
    spec = ModelSpec(source="timm:test_resnet.r160_in1k", tags=TAGS, pretrained_file=str(weights))
    fetched = fetch_model(spec, dataset=digits, progress=False)
    x = torch.randn(2, 3, 160, 160)
    _same_outputs(original, fetched.model, x)
    _same_outputs(original, _roundtrip(fetched, tmp_path), x)
    pre = fetched.preprocess
    assert pre["kind"] == "timm" and pre["input_size"] == [3, 160, 160]
    assert pre["mean"] == list(original.pretrained_cfg["mean"])  # from the model's own data config


def test_hf_hub_source_goes_through_the_hub_client(tmp_path, digits, monkeypatch):
    """A hub repository laid out in a local Hugging Face cache, read by huggingface_hub in offline mode."""
    import huggingface_hub.constants as hfc
    import timm

    torch.manual_seed(1)
    original = timm.create_model("test_vit", pretrained=False, num_classes=7).eval()
    snap = tmp_path / "hub" / "models--zooscope-test--tiny-vit" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("0" * 40)
    write_safetensors(snap / "model.safetensors", original.state_dict())
    # as timm's push_to_hub writes it: the architecture and its full pretrained config
    pretrained_cfg = {k: v for k, v in original.pretrained_cfg.items() if k not in ("hf_hub_id", "tag")}
    cfg = {"architecture": "test_vit", "num_classes": 7,
           "pretrained_cfg": {**pretrained_cfg, "mean": [0.5] * 3, "std": [0.5] * 3, "num_classes": 7}}
    (snap / "config.json").write_text(json.dumps(cfg))
    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    spec = ModelSpec(source="hf-hub:zooscope-test/tiny-vit", tags=TAGS)
    fetched = fetch_model(spec, dataset=digits, progress=False)
    x = torch.randn(2, 3, 160, 160)
    _same_outputs(original, fetched.model, x)
    _same_outputs(original, _roundtrip(fetched, tmp_path), x)
    assert fetched.builder["name"] == "test_vit" and fetched.preprocess["mean"] == [0.5, 0.5, 0.5]


def test_torchvision_source_reads_the_torch_hub_cache_weights_only(tmp_path, digits, monkeypatch):
    import torchvision

    torch.manual_seed(2)
    original = torchvision.models.squeezenet1_1(weights=None).eval()
    url = torchvision.models.SqueezeNet1_1_Weights.DEFAULT.url
    ckpt = tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(url)
    ckpt.parent.mkdir(parents=True)
    torch.save(original.state_dict(), ckpt)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    spec = ModelSpec(source="torchvision:squeezenet1_1", tags=TAGS)
    fetched = fetch_model(spec, dataset=digits, progress=False)
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(original(x), fetched.model(x), rtol=0, atol=0)
    rebuilt = _roundtrip(fetched, tmp_path)
    with torch.inference_mode():
        torch.testing.assert_close(original(x), rebuilt(x), rtol=0, atol=0)
    assert fetched.preprocess["input_size"] == [3, 224, 224]
    assert fetched.preprocess["crop_pct"] == pytest.approx(224 / 256)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_file_source_with_a_recipe_architecture(tmp_path, digits, suffix):
    from zooscope.zoo.arch import build_arch
    from zooscope.config import ArchSpec

    arch = {"kind": "cnn", "widths": [4, 8], "hidden": 16}
    torch.manual_seed(3)
    original = build_arch(ArchSpec(**arch), in_chans=1, image_size=8, num_classes=10).eval()
    path = tmp_path / f"w{suffix}"
    if suffix == ".pt":
        torch.save({"state_dict": original.state_dict()}, path)
    else:
        write_safetensors(path, original.state_dict())
    fetched = fetch_model(ModelSpec(source=f"file:{path}", tags=TAGS, arch=arch), dataset=digits, progress=False)
    _same_outputs(original, fetched.model, torch.randn(3, 1, 8, 8))
    _same_outputs(original, _roundtrip(fetched, tmp_path), torch.randn(3, 1, 8, 8))


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, digits):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _Evil(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match="refusing") as info:
        load_state_dict_file(path)
    assert str(path) in str(info.value)
    spec = ModelSpec(source=f"file:{path}", tags=TAGS, arch={"kind": "cnn", "widths": [4], "hidden": 8})
    with pytest.raises(UnsafeCheckpointError):
        fetch_model(spec, dataset=digits, progress=False)
    assert not marker.exists()


def test_a_plain_pickle_of_a_module_is_refused(tmp_path):
    path = tmp_path / "module.pt"
    with open(path, "wb") as fh:
        pickle.dump(torch.nn.Linear(2, 2), fh)
    with pytest.raises(UnsafeCheckpointError, match="weights_only"):
        load_state_dict_file(path)


def test_a_declared_preprocessing_replaces_the_sources_and_the_network_is_fed_at_its_size(tmp_path, digits):
    """A file: checkpoint of a timm architecture trained at 32 px with its own mean and std: timm's pretrained config
    (160 px here) would feed it the wrong pixels; the declared keys replace it, the rest of it stays."""
    import timm
    import torchvision.transforms.functional as F
    from timm.data import resolve_model_data_config
    from torchvision.transforms import InterpolationMode

    from zooscope.data.transforms import iter_batches
    from zooscope.zoo.card import make_card

    torch.manual_seed(3)
    original = timm.create_model("test_resnet.r160_in1k", pretrained=False, num_classes=10).eval()
    weights = tmp_path / "mine.safetensors"
    write_safetensors(weights, original.state_dict())
    declared = {"size": 32, "crop_pct": 1.0, "interpolation": "bilinear", "mean": [0.5, 0.4, 0.3], "std": [0.25] * 3}
    spec = ModelSpec(source=f"file:{weights}", arch="test_resnet.r160_in1k", num_classes=10, tags=TAGS,
                     preprocess=declared)
    fetched = fetch_model(spec, dataset=digits, progress=False)
    default = resolve_model_data_config(original)
    assert default["input_size"] == (3, 160, 160)  # what the model would have been fed
    assert fetched.preprocess == {"kind": "timm", "input_size": [3, 32, 32], "interpolation": "bilinear",
                                  "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.25, 0.25], "crop_pct": 1.0,
                                  "crop_mode": default["crop_mode"]}
    positions = digits.split("eval")[:5]
    batch = next(iter_batches(digits, positions, fetched.preprocess, batch_size=5))
    by_hand = torch.stack([F.normalize(F.to_tensor(F.center_crop(F.resize(
        digits.pil(int(p)).convert("RGB"), 32, interpolation=InterpolationMode.BILINEAR), 32)), [0.5, 0.4, 0.3], [0.25] * 3)
        for p in positions])
    torch.testing.assert_close(batch, by_hand, rtol=0, atol=0)
    card = make_card("mine", spec, fetched, weights_sha256="0" * 64, dataset=digits)
    assert card["input_size"] == [3, 32, 32] and card["preprocess_declared"] == declared


def test_a_declared_mean_and_std_replace_a_file_checkpoints_dataset_statistics(tmp_path, digits):
    arch = {"kind": "mlp", "hidden": [8]}
    fetched0 = fetch_model(ModelSpec(source="recipe:supervised", tags={**TAGS, "seed": 0}, arch=arch,
                                     train={"epochs": 1}), dataset=digits, progress=False)
    weights = tmp_path / "mlp.safetensors"
    write_safetensors(weights, fetched0.model.state_dict())
    spec = ModelSpec(source=f"file:{weights}", arch=arch, tags=TAGS, preprocess={"mean": [0.1], "std": [0.2]})
    assert fetch_model(spec, dataset=digits, progress=False).preprocess == {"kind": "native", "mean": [0.1], "std": [0.2]}
    three = ModelSpec(source=f"file:{weights}", arch=arch, tags=TAGS, preprocess={"mean": [0.1] * 3})
    with pytest.raises(ValueError, match=r"preprocess.mean: 3 values for an input of 1 channel"):
        fetch_model(three, dataset=digits, progress=False)


def test_a_compressed_model_fetches_its_file_parent_and_records_its_weights(tmp_path, digits):
    """recipe:prune over a file: checkpoint: the parent read through the file source, pruned, and the card's digest
    of the parent equal to the digest of the file's tensors."""
    from safetensors.torch import load_file

    from zooscope.io import tensors_digest
    from zooscope.zoo.arch import build_arch
    from zooscope.config import ArchSpec

    arch = {"kind": "cnn", "widths": [4, 8], "hidden": 16}
    torch.manual_seed(3)
    net = build_arch(ArchSpec(**arch), in_chans=1, image_size=8, num_classes=10)
    ckpt = tmp_path / "parent.safetensors"
    write_safetensors(ckpt, {k: v.clone() for k, v in net.state_dict().items()})
    tags = {**TAGS, "seed": 1}
    parent = {"source": f"file:{ckpt}", "tags": TAGS, "arch": arch}
    fetched = fetch_model(ModelSpec(source="recipe:prune", tags=tags, train={"parent": parent, "sparsity": 0.5}),
                          dataset=digits, progress=False)
    assert fetched.training["parent_weights"] == tensors_digest(load_file(ckpt))
    assert fetched.training["compression"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    rebuilt = _roundtrip(fetched, tmp_path)
    _same_outputs(fetched.model, rebuilt, torch.randn(4, 1, 8, 8))
