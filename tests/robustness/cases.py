"""The catalogue of bad inputs: each case is a way a study can be wrong, and the fragment of the one line that
must name it. ``PARAMS`` are broken study files (checked by ``zooscope validate`` and by the first stage DVC runs)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from tests.conftest import TINY_STUDY


@dataclass(frozen=True)
class Case:
    """A broken study: ``edit`` turns the tiny digits study (a dict) into it, or ``text`` is the whole file."""

    name: str
    expected: str
    edit: Callable[[dict], Any] | None = None
    text: str | None = None

    def write(self, path) -> None:
        if self.text is not None:
            path.write_text(self.text)
            return
        study = copy.deepcopy(TINY_STUDY)
        self.edit(study)
        path.write_text(yaml.safe_dump(study, sort_keys=False))


def _set(*keys_and_value: Any) -> Callable[[dict], None]:
    *keys, value = keys_and_value

    def edit(study: dict) -> None:
        node = study
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return edit


def _drop(*keys: str) -> Callable[[dict], None]:
    def edit(study: dict) -> None:
        node = study
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
    return edit


def _rename_model(new: str) -> Callable[[dict], None]:
    def edit(study: dict) -> None:
        study["models"] = {new: study["models"]["cnn_b"], **{k: v for k, v in study["models"].items() if k != "cnn_b"}}
    return edit


def _only_base(study: dict) -> None:
    study["models"] = {"cnn_a": study["models"]["cnn_a"]}


def _recipes_on_a_folder(study: dict) -> None:
    study["dataset"] = {"source": "imagefolder:/srv/images", "calibration_size": 0.1}


def _file_without_arch(study: dict) -> None:
    study["models"]["byo"] = {"source": "file:/srv/w.safetensors", "tags": {**study["models"]["cnn_a"]["tags"], "seed": 5}}


def _file_model_fed(preprocess: dict, arch: str | dict = "resnet18"):
    """A study edit: a file: checkpoint (of ``arch``) declaring its own ``preprocess``."""
    def edit(study: dict) -> None:
        study["models"]["byo"] = {"source": "file:/srv/w.safetensors", "arch": arch, "preprocess": preprocess,
                                  "tags": {**study["models"]["cnn_a"]["tags"], "seed": 5}}
    return edit


_GOOD = yaml.safe_dump(TINY_STUDY, sort_keys=False)

PARAMS = [
    Case("not yaml", "not valid YAML", text="models: [cnn_a\n"),
    Case("a list at the top", "expected a mapping at the top level", text="- dataset\n- models\n"),
    Case("an empty file", "expected a mapping at the top level", text=""),
    Case("a tab-indented file", "not valid YAML", text=_GOOD.replace("  source: digits", "\tsource: digits", 1)),
    Case("an unknown top-level key", "modles: unknown key", _set("modles", {})),
    Case("no dataset", "dataset: Field required", _drop("dataset")),
    Case("no models", "models: Field required", _drop("models")),
    Case("no base", "base: Field required", _drop("base")),
    Case("an empty zoo", "models: Dictionary should have at least 1 item", _set("models", {})),
    Case("a one-model zoo", "needs at least 2", _only_base),
    Case("a base that is no model", "base 'nope' is not a model id", _set("base", "nope")),
    Case("a shell command in an id", "model id 'a;touch PWNED;b' is not allowed", _rename_model("a;touch PWNED;b")),
    Case("a dot in an id", "model id 'cnn.b' is not allowed", _rename_model("cnn.b")),
    Case("a space in an id", "model id 'cnn b' is not allowed", _rename_model("cnn b")),
    Case("a trailing newline in an id", "is not allowed", _rename_model("cnn_b\n")),
    Case("a duplicate model id", "duplicate key 'cnn_a'", text=_GOOD.replace("  cnn_b:", "  cnn_a:", 1)),
    Case("an unknown dataset source", "unknown dataset source 'mnist'", _set("dataset", "source", "mnist")),
    Case("an image folder without a path", "needs a value after the colon", _set("dataset", "source", "imagefolder:")),
    Case("an eval fraction above one", "dataset.eval_size", _set("dataset", "eval_size", 1.5)),
    Case("a zero calibration size", "a sample count must be positive", _set("dataset", "calibration_size", 0)),
    Case("a split size that is text", "dataset.calibration_size", _set("dataset", "calibration_size", "ten")),
    Case("image_size for an in-memory set", "image_size applies to imagefolder sources only",
         _set("dataset", "image_size", 32)),
    Case("recipes on an image folder without image_size", "set dataset.image_size", _recipes_on_a_folder),
    Case("zero threads", "threads: Input should be greater than or equal to 1", _set("threads", 0)),
    Case("an unknown model source", "models.cnn_b.source", _set("models", "cnn_b", "source", "ftp:weights")),
    Case("an unknown recipe", "models.cnn_b", _set("models", "cnn_b", "source", "recipe:magic")),
    Case("a model without tags", "models.cnn_b.tags: Field required", _drop("models", "cnn_b", "tags")),
    Case("an unknown tag", "models.cnn_b.tags.colour: unknown key", _set("models", "cnn_b", "tags", "colour", "red")),
    Case("a missing tag", "models.cnn_b.tags.framework: Field required", _drop("models", "cnn_b", "tags", "framework")),
    Case("a recipe seed that is text", "models.cnn_b", _set("models", "cnn_b", "tags", "seed", "one")),
    Case("an unknown arch key", "models.cnn_b.arch: colour: unknown key; allowed here",
         _set("models", "cnn_b", "arch", "colour", 3)),
    Case("an unknown arch kind", "models.cnn_b.arch: kind: Input should be", _set("models", "cnn_b", "arch", "kind", "rnn")),
    Case("an unknown training option", "train.dropout: unknown key", _set("models", "cnn_b", "train", "dropout", 0.5)),
    Case("negative epochs", "models.cnn_b", _set("models", "cnn_b", "train", "epochs", -1)),
    Case("a file model without arch", "models.byo", _file_without_arch),
    Case("a preprocessing for a recipe", "'preprocess' does not apply to recipe sources",
         _set("models", "cnn_b", "preprocess", {"size": 32})),
    Case("an unknown preprocessing key", "preprocess.resize: unknown key", _file_model_fed({"resize": 32})),
    Case("a zero std", "every std must be above 0", _file_model_fed({"mean": [0.5], "std": [0.0]})),
    Case("a mean and std of other lengths", "mean has 3 channels and std 1",
         _file_model_fed({"mean": [0.5] * 3, "std": [0.2]})),
    Case("an unknown interpolation", "preprocess.interpolation", _file_model_fed({"interpolation": "lanczos9"})),
    Case("a size for the dataset's own pixels", "size do not apply to a file: checkpoint of an arch mapping",
         _file_model_fed({"size": 32}, arch={"kind": "mlp", "hidden": [8]})),
    Case("too few bootstrap resamples", "ensemble.n_boot", _set("ensemble", "n_boot", 10)),
    Case("overlapping class groups", "class_groups", _set("ensemble", "class_groups", {"a": [0, 1], "b": [1, 2]})),
    Case("an empty probe grid", "probe.l2_grid", _set("probe", "l2_grid", [])),
    Case("a zero k of the k-NN", "similarity.knn_k", _set("similarity", "knn_k", 0)),
    Case("a negative attack budget", "mistakes.eps", _set("mistakes", "eps", [-0.1])),
    Case("an unknown transfer attack", "mistakes.transfer_attack", _set("mistakes", "transfer_attack", "cw")),
    Case("attacks switched by a word", "mistakes.attacks: Input should be a valid boolean",
         _set("mistakes", "attacks", "no")),
    Case("thumbnails as text", "report.thumbnails", _set("report", "thumbnails", "many")),
    Case("an unknown embed device", "embed.device", _set("embed", "device", "tpu")),
    Case("an id that is a number", "models.12.[key]: Input should be a valid string", text=_GOOD.replace("  cnn_b:", "  12:", 1)),
    Case("an unknown corruption", "shift.corruptions: unknown corruption 'fog'; known: gaussian_noise",
         _set("shift", "corruptions", {"fog": [1]})),
    Case("a corruption severity of 6", "corruption rotate: severities must be distinct values of [1, 2, 3, 4, 5], got [6]",
         _set("shift", "corruptions", {"rotate": [6]})),
    Case("a corruption without severities", "corruption jpeg: severities must be distinct values",
         _set("shift", "corruptions", {"jpeg": []})),
    Case("a negative shift seed", "shift.seed", _set("shift", "seed", -1)),
    Case("a folder set named like a corrupted set", "folder set 'v2-3': a name takes letters, digits and '_'",
         _set("shift", "folders", {"v2-3": "/tmp"})),
    Case("corruptions of an image folder kept in files", "shift.corruptions corrupt the images held in memory",
         _set("dataset", {"source": "imagefolder:/tmp", "seed": 0})),
]

#: Studies whose file is valid but whose dataset cannot give what they ask: `zooscope validate` reads the dataset,
#: and so does every stage that uses it (fetch first).
DATASET = [
    Case("a train size above the dataset", "dataset.train_size: asks for 5000 samples but only", _set("dataset", "train_size", 5000)),
    Case("splits that overlap the whole set", "exceed the", _set("dataset", "train_size", 0.9)),
]

#: Settings that only the dataset's class count rules out: `zooscope validate` refuses them, the mistakes stage too.
CLASS_COUNT = [
    Case("a near-miss k as large as the class count", "mistakes.near_miss_k must lie in [1, 9]",
         _set("mistakes", "near_miss_k", 10)),
]
