"""Model sources: where a zoo member's weights come from, and how its network is rebuilt later.

``fetch_model`` dispatches on the source prefix and returns the network with a *builder* (a JSON-able
recipe for rebuilding the same architecture without weights) and its input preprocessing:

- ``recipe:<name>``: trained here (:mod:`zooscope.zoo.recipes`); ``recipe:prune`` and ``recipe:quantize`` fetch
  their ``train.parent`` first and compress it (builder ``int8``: the parent's network with its inputs quantised).
- ``timm:<arch.tag>``: ``timm.create_model(..., pretrained=True)`` (Hugging Face hub); ``pretrained_file``
  loads a local file instead through timm's ``pretrained_cfg_overlay``.
- ``hf-hub:<repo>``: a timm model hosted on the Hugging Face hub (config.json + weights).
- ``torchvision:<name>``: torchvision's weights enum; downloaded through ``torch.hub`` with hash check
  and loaded with ``weights_only=True``.
- ``file:<path>``: a local checkpoint for ``arch`` (a timm name or a recipe architecture).

Every path loads weights without executing code (safetensors or ``weights_only=True``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zooscope.config import ArchSpec, ModelSpec
from zooscope.data.datasets import Dataset
from zooscope.data.transforms import declare_preprocess, native_preprocess, timm_preprocess
from zooscope.zoo.safeload import load_state_dict_file

__all__ = ["Fetched", "fetch_model", "build_network", "load_network"]


@dataclass(frozen=True)
class Fetched:
    model: nn.Module
    builder: dict[str, Any]
    preprocess: dict[str, Any]
    training: dict[str, Any] | None = None


def _arch_builder(arch: ArchSpec, dataset: Dataset, num_classes: int) -> dict[str, Any]:
    chans, size, _ = dataset.image_shape
    return {"kind": "arch", "arch": arch.model_dump(mode="json"), "in_chans": chans, "image_size": size,
            "num_classes": num_classes}


def build_network(builder: dict[str, Any]) -> nn.Module:
    """A freshly initialised network of the architecture a builder describes (no weights loaded)."""
    kind = builder.get("kind")
    if kind == "int8":
        from zooscope.zoo.compress import attach_int8

        return attach_int8(build_network(builder["network"]))
    if kind == "arch":
        from zooscope.zoo.arch import build_arch

        return build_arch(ArchSpec(**builder["arch"]), in_chans=builder["in_chans"], image_size=builder["image_size"],
                          num_classes=builder["num_classes"])
    if kind == "timm":
        import timm

        return timm.create_model(builder["name"], pretrained=False, **builder.get("kwargs", {}))
    if kind == "torchvision":
        import torchvision

        return torchvision.models.get_model(builder["name"], weights=None, **builder.get("kwargs", {}))
    raise ValueError(f"unknown builder kind {kind!r} in model card; known: arch, timm, torchvision, int8")


def _load_weights(model: nn.Module, state: dict[str, torch.Tensor], *, source: str) -> None:
    """``model.load_state_dict(state, strict=True)``; a checkpoint that does not fit the architecture is refused
    in one line naming ``source`` (the file) and the first mismatches."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        detail = "; ".join(lines[:3]) + (f"; and {len(lines) - 3} more" if len(lines) > 3 else "")
        raise ValueError(f"{source}: the checkpoint does not fit the architecture {type(model).__name__} "
                         f"({detail or str(err).splitlines()[0]}); check models.<id>.arch and num_classes") from None


def load_network(builder: dict[str, Any], weights_path: str) -> nn.Module:
    """Rebuild a network and load its safetensors weights (strict), in eval mode."""
    model = build_network(builder)
    _load_weights(model, load_state_dict_file(weights_path), source=weights_path)
    return model.eval()


# --------------------------------------------------------------------------- fetchers


def _fetch_compressed(spec: ModelSpec, dataset: Dataset, progress: bool) -> Fetched:
    """A ``recipe:prune`` / ``recipe:quantize`` model: its parent fetched from ``train.parent`` (trained again, read or
    downloaded as that zoo member is), then compressed. The card's training records the compression and a digest of
    the parent's weights, so the compression table can tell whether the parent it compares with is the one used."""
    from zooscope.io import tensors_digest
    from zooscope.zoo.recipes import compress_recipe

    parent = fetch_model(spec.parent, dataset=dataset, progress=progress)
    digest = tensors_digest(parent.model.state_dict())
    model, summary = compress_recipe(spec, parent.model, dataset=dataset, preprocess=parent.preprocess,
                                     progress=progress)
    builder = {"kind": "int8", "network": parent.builder} if spec.target == "quantize" else parent.builder
    return Fetched(model, builder, parent.preprocess,
                   {"compression": summary, "parent_weights": digest, "parent": parent.training})


def _fetch_recipe(spec: ModelSpec, dataset: Dataset, progress: bool) -> Fetched:
    from zooscope.zoo.recipes import train_recipe

    if spec.parent is not None:
        return _fetch_compressed(spec, dataset, progress)
    model, pre, summary = train_recipe(spec, dataset=dataset, progress=progress)
    num_classes = getattr(model, "num_classes", dataset.num_classes)
    return Fetched(model, _arch_builder(spec.arch, dataset, num_classes), pre, summary)


def _timm_fetched(model: nn.Module, name: str, kwargs: dict[str, Any]) -> Fetched:
    from timm.data import resolve_model_data_config

    kwargs = {**kwargs, "num_classes": model.num_classes}
    return Fetched(model.eval(), {"kind": "timm", "name": name, "kwargs": kwargs},
                   timm_preprocess(resolve_model_data_config(model)))


def _fetch_timm(spec: ModelSpec, dataset: Dataset, progress: bool) -> Fetched:
    import timm

    kwargs = {"num_classes": spec.num_classes} if spec.num_classes else {}
    overlay = None
    if spec.pretrained_file:
        load_state_dict_file(spec.pretrained_file)  # refuses an unsafe or damaged file in one line, before timm reads it
        overlay = {"file": str(Path(spec.pretrained_file).expanduser())}
    try:
        model = timm.create_model(spec.target, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except RuntimeError as err:
        if not spec.pretrained_file or "state_dict" not in str(err):
            raise
        raise ValueError(f"{spec.pretrained_file}: the checkpoint does not fit timm's {spec.target} "
                         f"({str(err).splitlines()[-1].strip()}); check the architecture and num_classes") from None
    return _timm_fetched(model, spec.target, kwargs)


def _fetch_hf_hub(spec: ModelSpec, dataset: Dataset, progress: bool) -> Fetched:
    import timm
    from timm.models import load_model_config_from_hf

    _, arch_name, model_args = load_model_config_from_hf(spec.target)
    extra = {"num_classes": spec.num_classes} if spec.num_classes else {}
    model = timm.create_model(f"hf-hub:{spec.target}", pretrained=True, **extra)
    return _timm_fetched(model, arch_name, {**(model_args or {}), **extra})


_INTERPOLATION = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest"}


def _fetch_torchvision(spec: ModelSpec, dataset: Dataset, progress: bool) -> Fetched:
    import torchvision

    name = spec.target
    try:
        enum = torchvision.models.get_model_weights(name)
    except ValueError:
        raise ValueError(f"torchvision:{name}: unknown torchvision model; see torchvision.models.list_models()") from None
    key = spec.weights or "DEFAULT"
    try:
        weights = enum[key] if key != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise ValueError(f"torchvision:{name}: unknown weights {key!r}; known: DEFAULT, {', '.join(enum.__members__)}") from None
    state = torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=progress, check_hash=True,
                                               weights_only=True)
    kwargs = {"num_classes": len(weights.meta["categories"])}
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    _load_weights(model, state, source=weights.url)
    tf = weights.transforms()
    crop, resize = tf.crop_size[0], tf.resize_size[0]
    pre = {"kind": "timm", "input_size": [3, crop, crop], "crop_pct": crop / resize, "crop_mode": "center",
           "interpolation": _INTERPOLATION.get(tf.interpolation.value, "bilinear"),
           "mean": list(tf.mean), "std": list(tf.std)}
    return Fetched(model.eval(), {"kind": "torchvision", "name": name, "kwargs": kwargs}, pre)


def _fetch_file(spec: ModelSpec, dataset: Dataset, progress: bool) -> Fetched:
    state = load_state_dict_file(spec.target)  # refuses unsafe pickles before anything is built
    if isinstance(spec.arch, str):
        import timm

        kwargs = {"num_classes": spec.num_classes} if spec.num_classes else {}
        model = timm.create_model(spec.arch, pretrained=False, **kwargs)
        _load_weights(model, state, source=spec.target)
        return _timm_fetched(model, spec.arch, kwargs)
    num_classes = spec.num_classes if spec.num_classes is not None else dataset.num_classes
    builder = _arch_builder(spec.arch, dataset, num_classes)
    model = build_network(builder)
    _load_weights(model, state, source=spec.target)
    return Fetched(model.eval(), builder, native_preprocess(dataset.images[dataset.split("train")]), spec.train)


_FETCHERS = {
    "recipe": _fetch_recipe,
    "timm": _fetch_timm,
    "hf-hub": _fetch_hf_hub,
    "torchvision": _fetch_torchvision,
    "file": _fetch_file,
}


def fetch_model(spec: ModelSpec, *, dataset: Dataset, progress: bool = True) -> Fetched:
    """Obtain a zoo member's network (trained, downloaded or read from disk)."""
    try:
        fetcher = _FETCHERS[spec.kind]
    except KeyError:
        raise ValueError(f"unknown model source {spec.source!r}; known prefixes: {', '.join(_FETCHERS)}") from None
    fetched = fetcher(spec, dataset, progress)
    if spec.preprocess is None:
        return fetched
    declared = spec.preprocess.model_dump(mode="json", exclude_none=True)
    return replace(fetched, preprocess=declare_preprocess(fetched.preprocess, declared))
