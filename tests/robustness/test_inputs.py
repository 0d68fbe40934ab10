"""The catalogue's files and environment: damaged datasets, checkpoints and artifacts, degenerate numbers and a full
disk, each through the stage CLI that reads it. Each gets one line naming the file or model (no traceback), exit
status 2, and leaves what an earlier run wrote as it was."""

from __future__ import annotations

import copy
import gzip
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from stages import embed, fetch
from tests.conftest import TINY_STUDY
from tests.datafiles import write_fashion_mnist, write_image_folder
from tests.robustness.test_params import one_line
from zooscope.config import ArchSpec
from zooscope.io import write_safetensors
from zooscope.zoo.arch import build_arch

EARLIER = b"what an earlier run wrote"


class Study:
    """A tiny digits study in ``tmp_path`` with one extra model ``byo`` (``file:`` weights of the cnn recipe
    architecture), and an earlier run's weights of ``byo`` in place."""

    def __init__(self, tmp_path: Path, *, dataset: dict | None = None, byo: dict | None = None,
                 ckpt: Path | None = None):
        self.root = tmp_path
        self.ckpt = ckpt or tmp_path / "byo.safetensors"
        study = copy.deepcopy(TINY_STUDY)
        if dataset:
            study["dataset"] = {"seed": 0, "calibration_size": 2, "eval_size": 3, **dataset}
        study["models"]["byo"] = byo or {"source": f"file:{self.ckpt}", "arch": dict(TINY_STUDY["models"]["cnn_a"]["arch"]),
                                         "tags": {**TINY_STUDY["models"]["cnn_a"]["tags"], "seed": 9}}
        self.params = tmp_path / "params.yaml"
        self.params.write_text(yaml.safe_dump(study, sort_keys=False))
        self.models = tmp_path / "models"
        (self.models / "byo").mkdir(parents=True)
        (self.models / "byo" / "weights.safetensors").write_bytes(EARLIER)

    def fetch(self, model: str = "byo") -> int:
        return fetch.main(["--params", str(self.params), "--model", model, "--models", str(self.models), "--no-progress"])

    def embed(self, model: str = "byo") -> int:
        return embed.main(["--params", str(self.params), "--model", model, "--models", str(self.models),
                           "--out", str(self.root / "embeddings"), "--no-progress"])

    def kept(self) -> bool:
        return (self.models / "byo" / "weights.safetensors").read_bytes() == EARLIER


def _state(**arch) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    spec = ArchSpec(**{**TINY_STUDY["models"]["cnn_a"]["arch"], **arch})
    return build_arch(spec, in_chans=1, image_size=8, num_classes=10).state_dict()


def _scaled(factor: float | None = None, value: float | None = None, key: str | None = None):
    def make(path: Path) -> None:
        state = _state()
        for k, v in state.items():
            if key is None or k == key:
                state[k] = v * factor if factor is not None else torch.full_like(v, value)
        write_safetensors(path, state)
    return make


def _bytes_of(data: bytes, suffix: str = ".safetensors"):
    def make(path: Path) -> Path:
        path = path.with_suffix(suffix)
        path.write_bytes(data)
        return path
    return make


def _torch_saved(obj, *, cut: float | None = None):
    def make(path: Path) -> Path:
        path = path.with_suffix(".pt")
        torch.save(obj() if callable(obj) else obj, path)
        if cut is not None:
            path.write_bytes(path.read_bytes()[:int(path.stat().st_size * cut)])
        return path
    return make


def _truncated_safetensors(path: Path) -> None:
    write_safetensors(path, _state())
    path.write_bytes(path.read_bytes()[:-100])


class _Payload:
    """A pickle whose loading would run a shell command (creates MARKER)."""

    def __reduce__(self):
        return os.system, (f"touch {os.environ['ZS_MARKER']}",)


def _malicious(path: Path) -> Path:
    path = path.with_suffix(".pt")
    path.write_bytes(pickle.dumps({"state_dict": _Payload()}))
    return path


WEIGHTS = [
    ("an empty safetensors file", _bytes_of(b""), "not a readable safetensors file (0 bytes"),
    ("a truncated safetensors file", _truncated_safetensors, "not a readable safetensors file"),
    ("a pickle named .safetensors", lambda p: torch.save(_state(), p), "not a readable safetensors file"),
    ("a text file named .safetensors", _bytes_of(b"hello, not weights"), "not a readable safetensors file"),
    ("an empty .pt file", _bytes_of(b"", ".pt"), "not a readable torch checkpoint (0 bytes"),
    ("a truncated .pt file", _torch_saved(_state, cut=0.5), "not a readable torch checkpoint"),
    ("a text file named .pt", _bytes_of(b"plain text, not a pickle", ".pt"), "not a readable torch checkpoint"),
    ("a pickle that runs a command", _malicious, "refusing to load this checkpoint"),
    ("a pickled module", _torch_saved(lambda: torch.nn.Linear(2, 2)), "refusing to load this checkpoint"),
    ("a list instead of a state dict", _torch_saved([torch.zeros(2)]), "not a state dict"),
    ("weights of other sizes", lambda p: write_safetensors(p, _state(widths=[4, 16])), "does not fit the architecture"),
    ("missing tensors", lambda p: write_safetensors(p, dict(list(_state().items())[:2])), "does not fit the architecture"),
    ("NaN weights", _scaled(value=float("nan"), key="head.bias"), "model byo: weights: 1 of"),
    ("inf weights", _scaled(factor=float("inf")), "hold NaN or inf"),
]


@pytest.mark.parametrize(("make", "expected"), [c[1:] for c in WEIGHTS], ids=[c[0] for c in WEIGHTS])
def test_a_bad_checkpoint_is_refused_by_fetch(tmp_path, capsys, monkeypatch, make, expected):
    marker = tmp_path / "PWNED"
    monkeypatch.setenv("ZS_MARKER", str(marker))
    ckpt = tmp_path / "byo.safetensors"
    study = Study(tmp_path, ckpt=make(ckpt) or ckpt)
    assert study.fetch() == 2
    line = one_line(capsys)
    assert expected in line, line
    assert study.kept() and not marker.exists()


def test_a_missing_checkpoint_names_it(tmp_path, capsys):
    study = Study(tmp_path)
    assert study.fetch() == 2 and f"{study.ckpt}: checkpoint not found" in one_line(capsys) and study.kept()


def test_a_damaged_pretrained_file_is_refused_before_timm_reads_it(tmp_path, capsys):
    bad = tmp_path / "resnet.safetensors"
    bad.write_bytes(b"\x00" * 64)
    study = Study(tmp_path, byo={"source": "timm:resnet10t", "pretrained_file": str(bad),
                                 "tags": {**TINY_STUDY["models"]["cnn_a"]["tags"], "seed": 9}})
    assert study.fetch() == 2 and f"{bad}: not a readable safetensors file" in one_line(capsys) and study.kept()


# --------------------------------------------------------------------------- datasets


def _fashion(damage):
    def make(root: Path) -> dict:
        write_fashion_mnist(root)
        damage(root)
        return {"source": "fashion-mnist", "root": str(root)}
    return make


def _cut(name: str, keep: int):
    def damage(root: Path) -> None:
        path = root / name
        path.write_bytes(path.read_bytes()[:keep])
    return damage


def _rewrite_gz(name: str, transform):
    def damage(root: Path) -> None:
        path = root / name
        path.write_bytes(gzip.compress(transform(gzip.decompress(path.read_bytes()))))
    return damage


def _folder(damage, *, image_size: int | None = 8):
    def make(root: Path) -> dict:
        write_image_folder(root, {"cat": 4, "dog": 4})
        damage(root)
        return {"source": f"imagefolder:{root}", "image_size": image_size}
    return make


def _damaged_image(name: str, data):
    def damage(root: Path) -> None:
        path = root / "dog" / name
        path.write_bytes(data(path) if callable(data) else data)
    return damage


DATA = [
    ("a truncated gzip IDX file", _fashion(_cut("t10k-images-idx3-ubyte.gz", 30)), "a damaged or truncated gzip file"),
    ("an IDX file of the wrong magic", _fashion(_rewrite_gz("train-labels-idx1-ubyte.gz", lambda b: b"\x01" + b[1:])),
     "not an IDX file"),
    ("an IDX file shorter than its header says", _fashion(_rewrite_gz("train-images-idx3-ubyte.gz", lambda b: b[:-5])),
     "IDX header declares shape"),
    ("a missing Fashion-MNIST folder", lambda root: {"source": "fashion-mnist", "root": str(root / "nowhere")},
     "does not exist"),
    ("an image folder that does not exist", lambda root: {"source": f"imagefolder:{root / 'nowhere'}", "image_size": 8},
     "is not a folder"),
    ("an image folder of one class", _folder(lambda root: shutil.rmtree(root / "dog")), "has 1 class sub-folder(s) (cat)"),
    ("an empty class folder", _folder(lambda root: (root / "eel").mkdir()), "holds no images"),
    ("a truncated PNG", _folder(_damaged_image("0.png", lambda p: p.read_bytes()[:60])), "0.png: not a readable image"),
    ("a text file named .jpg", _folder(_damaged_image("x.jpg", b"this is text")), "x.jpg: not a readable image"),
    ("an empty PNG", _folder(_damaged_image("1.png", b"")), "1.png: not a readable image"),
]


@pytest.mark.parametrize(("make", "expected"), [c[1:] for c in DATA], ids=[c[0] for c in DATA])
def test_a_bad_dataset_is_refused_by_fetch_naming_the_file(tmp_path, capsys, monkeypatch, make, expected):
    monkeypatch.setenv("ZOOSCOPE_CACHE", str(tmp_path / "cache"))
    dataset = make(tmp_path / "data")
    study = Study(tmp_path, dataset=dataset)
    write_safetensors(study.ckpt, _state())
    assert study.fetch("cnn_a") == 2
    line = one_line(capsys)
    assert expected in line, line
    assert not (study.models / "cnn_a").exists() and study.kept()


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(("make", "expected"), [
    (_scaled(factor=1e25), "embed byo train embeddings: "),  # finite weights whose activations overflow to inf
    (_scaled(value=0.0), "hold NaN, inf or only zeros"),  # a network that outputs zeros everywhere
], ids=["activations that overflow", "all-zero outputs"])
def test_embeddings_without_a_direction_are_refused_by_embed(tmp_path, capsys, make, expected):
    study = Study(tmp_path)
    make(study.ckpt)
    assert study.fetch() == 0
    capsys.readouterr()
    assert study.embed() == 2
    line = one_line(capsys)
    assert expected in line and "byo" in line, line
    assert not (tmp_path / "embeddings" / "byo").exists()


def test_constant_embeddings_are_a_warning_that_names_what_is_undefined(tmp_path, capsys):
    study = Study(tmp_path)
    write_safetensors(study.ckpt, {k: torch.full_like(v, 0.1) if k.endswith("bias") else torch.zeros_like(v)
                                   for k, v in _state().items()})  # zero weights, biases 0.1: one output for every image
    assert study.fetch() == 0 and study.embed() == 0
    err = capsys.readouterr().err
    assert "warning: embed byo: train embeddings" in err and "CKA and mutual k-NN with it are undefined" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- environment


def test_a_full_disk_names_the_file_and_keeps_the_earlier_output(tmp_path, capsys, monkeypatch):
    """A writer that meets ENOSPC (here the safetensors writer, as on a full disk) gives one line naming the file;
    the earlier weights stay, and no temporary file is left."""
    import safetensors.torch

    def full(*args, **kwargs):
        raise safetensors.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    study = Study(tmp_path)
    write_safetensors(study.ckpt, _state())
    monkeypatch.setattr(safetensors.torch, "save_file", full)
    assert study.fetch() == 2
    line = one_line(capsys)
    assert f"no space left on the device to write {study.models / 'byo' / 'weights.safetensors'}" in line
    assert study.kept() and sorted(p.name for p in (study.models / "byo").iterdir()) == ["weights.safetensors"]


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_really_full_disk(tmp_path, small_disk, capsys):
    study = Study(tmp_path)
    write_safetensors(study.ckpt, _state(widths=[64, 128], hidden=256))  # about 1 MB of weights, for a 256 KiB disk
    params = yaml.safe_load(study.params.read_text())
    params["models"]["byo"]["arch"] = {**params["models"]["byo"]["arch"], "widths": [64, 128], "hidden": 256}
    study.params.write_text(yaml.safe_dump(params, sort_keys=False))
    out = small_disk / "models"
    (out / "byo").mkdir(parents=True)
    (out / "byo" / "weights.safetensors").write_bytes(EARLIER)
    assert fetch.main(["--params", str(study.params), "--model", "byo", "--models", str(out), "--no-progress"]) == 2
    assert "no space left on the device to write" in one_line(capsys)
    assert (out / "byo" / "weights.safetensors").read_bytes() == EARLIER
    assert [p.name for p in (out / "byo").iterdir()] == ["weights.safetensors"]


@pytest.mark.parametrize(("damage", "expected"), [
    (lambda card: card.unlink(), "card.json: artifact not found; run the stage that produces it first"),
    (lambda card: card.write_text("{not json"), "card.json: not valid JSON"),
], ids=["a missing upstream artifact", "a damaged card"])
def test_a_missing_or_damaged_artifact_names_it(tmp_path, capsys, damage, expected):
    study = Study(tmp_path)
    write_safetensors(study.ckpt, _state())
    assert study.fetch() == 0
    damage(study.models / "byo" / "card.json")
    capsys.readouterr()
    assert study.embed() == 2 and expected in one_line(capsys)


@pytest.mark.parametrize(("args", "expected"), [
    (["--params", "/nonexistent/params.yaml", "--model", "cnn_a"], "study file not found"),
    (["--model", "nope"], "no model 'nope' under 'models'"),
], ids=["a missing study file", "a model the study does not have"])
def test_a_stage_asked_for_what_is_not_there(tmp_path, capsys, args, expected):
    study = Study(tmp_path)
    argv = ["--params", str(study.params), *args] if args[0] != "--params" else args
    assert fetch.main([*argv, "--models", str(study.models)]) == 2 and expected in one_line(capsys)
