"""A study of four real timm architectures of different families (a ResNet, a ViT, a ConvNeXt, a MobileNetV3) at
their own 224 px on a folder of real images (Fashion-MNIST test images written out as RGB PNGs, three classes),
through a real `dvc repro` from fetch to report: the weights are randomly initialised and saved here as
safetensors (nothing can be downloaded), then loaded exactly as pretrained weights would be, one through
``timm:<arch>`` with ``pretrained_file`` and three as ``file:`` checkpoints. Each model's embeddings are
recomputed by hand (timm's network, torchvision's transforms from timm's own pretrained config) and the report
is opened in headless Chromium."""

from __future__ import annotations

import gzip
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import write_study
from tests.dvcrepo import dvc, make_repo
from tests.report.test_report import _chromium, needs_chromium

pytestmark = pytest.mark.slow

FASHION = Path(os.environ.get("ZOOSCOPE_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
CLASSES = {0: "t-shirt", 1: "trouser", 7: "sneaker"}  # Fashion-MNIST label -> class folder
PER_CLASS = 16
#: model id -> (timm architecture, how its checkpoint is given)
MODELS = {"r18": ("resnet18", "pretrained_file"), "vit": ("vit_tiny_patch16_224", "file"),
          "convnext": ("convnext_atto", "file"), "mbv3": ("mobilenetv3_small_100", "file")}


def _fashion_test_set() -> tuple[np.ndarray, np.ndarray]:
    """Debian's Fashion-MNIST test images uint8 [10000, 28, 28] and labels [10000], read from the IDX files."""
    images = np.frombuffer(gzip.decompress((FASHION / "t10k-images-idx3-ubyte.gz").read_bytes()), np.uint8, offset=16)
    labels = np.frombuffer(gzip.decompress((FASHION / "t10k-labels-idx1-ubyte.gz").read_bytes()), np.uint8, offset=8)
    return images.reshape(-1, 28, 28), labels


def _write_folder(root: Path) -> None:
    from PIL import Image

    images, labels = _fashion_test_set()
    for label, name in CLASSES.items():
        (root / name).mkdir(parents=True)
        for i, k in enumerate(np.flatnonzero(labels == label)[:PER_CLASS]):
            Image.fromarray(images[k], "L").convert("RGB").save(root / name / f"{i:03d}.png")


def _study(folder: Path, checkpoints: Path) -> dict:
    models = {}
    for mid, (arch, how) in MODELS.items():
        weights = str(checkpoints / f"{mid}.safetensors")
        source = {"source": f"timm:{arch}", "pretrained_file": weights} if how == "pretrained_file" else \
            {"source": f"file:{weights}", "arch": arch}
        models[mid] = {**source, "num_classes": len(CLASSES),
                       "tags": {"seed": 0, "hyperparameters": "random-init", "architecture": arch,
                                "framework": "supervised", "data": "fmnist-rgb"}}
    return {"dataset": {"source": f"imagefolder:{folder}", "seed": 0, "eval_size": 0.3, "calibration_size": 0.2},
            "base": "r18", "threads": 2, "models": models,
            "embed": {"batch_size": 16}, "probe": {"l2_grid": [0.01, 0.0001]},
            "similarity": {"mix_fractions": [0.0, 1.0]}, "ensemble": {"greedy_max_size": 3, "strongest": 2},
            "report": {"thumbnails": 6},
            "mistakes": {"top_confusions": 2, "explain_k": 3, "show": 4, "prototypes": 2, "criticisms": 1,
                         "max_candidates": 100, "attack_subset": 4, "eps": [0.03], "pgd_steps": 2}}


def _by_hand(arch: str, weights: Path, files: list[str]) -> np.ndarray:
    """Embeddings float32 [len(files), d] of ``files``: timm's network with the saved weights, fed as timm's
    pretrained config says (resize to floor(size / crop_pct), centre crop, normalise), with torchvision's functions."""
    import timm
    import torchvision.transforms.functional as F
    from PIL import Image
    from safetensors.torch import load_file
    from torchvision.transforms import InterpolationMode

    net = timm.create_model(arch, pretrained=False, num_classes=len(CLASSES))
    net.load_state_dict(load_file(str(weights)))
    cfg = net.pretrained_cfg
    size = cfg["input_size"][-1]
    mode = InterpolationMode(cfg["interpolation"])
    x = torch.stack([F.normalize(F.to_tensor(F.center_crop(F.resize(Image.open(f).convert("RGB"),
                                                                       math.floor(size / cfg["crop_pct"]),
                                                                       interpolation=mode), size)),
                                 list(cfg["mean"]), list(cfg["std"])) for f in files])
    with torch.inference_mode():
        return net.eval().forward_head(net.forward_features(x), pre_logits=True).numpy()


@pytest.mark.skipif(not (FASHION / "t10k-images-idx3-ubyte.gz").exists() and os.environ.get("ZOOSCOPE_CI") != "1",
                    reason="needs Debian's dataset-fashion-mnist (make setup installs it)")
@needs_chromium
def test_four_timm_families_at_224px_run_from_fetch_to_report(tmp_path):
    import timm
    from safetensors.torch import save_file

    from zooscope.config import DatasetSpec
    from zooscope.data.datasets import load_dataset

    folder, checkpoints = tmp_path / "images", tmp_path / "checkpoints"
    _write_folder(folder)
    checkpoints.mkdir()
    torch.manual_seed(0)
    for mid, (arch, _) in MODELS.items():
        net = timm.create_model(arch, pretrained=False, num_classes=len(CLASSES))
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(checkpoints / f"{mid}.safetensors"))
    study = _study(folder, checkpoints)
    repo = make_repo(tmp_path / "repo", {})
    write_study(repo / "params.yaml", study)
    out = dvc(repo, "repro")
    assert "Traceback" not in out.stdout + out.stderr

    dataset = load_dataset(DatasetSpec(**study["dataset"]))
    eval_files = [dataset.paths[p] for p in dataset.split("eval")]
    assert len(eval_files) == round(0.3 * len(CLASSES) * PER_CLASS)
    for mid, (arch, _) in MODELS.items():
        card = json.loads((repo / f"artifacts/models/{mid}/card.json").read_text())
        assert card["preprocess"]["kind"] == "timm" and card["input_size"] == [3, 224, 224] and card["has_head"]
        emb = np.load(repo / f"artifacts/embeddings/{mid}/eval.npy")
        assert emb.shape[0] == len(eval_files)
        np.testing.assert_allclose(emb[:6], _by_hand(arch, checkpoints / f"{mid}.safetensors", eval_files[:6]),
                                   rtol=1e-4, atol=1e-4, err_msg=mid)
    pairs = json.loads((repo / "metrics/categories/architecture.json").read_text())
    assert pairs["pairs"] == 6  # four architectures: every pair is an architecture pair

    page = repo / "reports/index.html"
    dom, console, requests = _chromium(page.as_uri(), tmp_path)
    assert console == "" and requests == []
    sections = dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', dom, re.S))
    for sid in ("categories", "similarity", "ensembles", "adversarial-transfer"):
        assert "<svg" in sections.get(sid, ""), sid
    assert all(mid in sections["models"] for mid in MODELS)  # the per-model table has a row for each
