"""Model cards: what a zoo member is, where it came from and how to feed it (``card.json``)."""

from __future__ import annotations

from typing import Any

import torch

from zooscope.config import ModelSpec
from zooscope.data.datasets import Dataset
from zooscope.zoo.sources import Fetched

__all__ = ["make_card", "input_size"]


def input_size(preprocess: dict[str, Any], dataset: Dataset) -> list[int]:
    """[C, H, W] the network consumes."""
    if preprocess["kind"] == "timm":
        return [int(v) for v in preprocess["input_size"]]
    return list(dataset.image_shape)


def make_card(model_id: str, spec: ModelSpec, fetched: Fetched, *, weights_sha256: str, dataset: Dataset) -> dict[str, Any]:
    """The card of a fetched model; ``has_head`` is true when its classifier matches the dataset's labels."""
    from zooscope.zoo.embedding import embedding_fn

    model = fetched.model.eval()
    size = input_size(fetched.preprocess, dataset)
    with torch.inference_mode():
        emb, logits = embedding_fn(model)(torch.zeros(1, *size))
    num_outputs = int(logits.shape[1])
    return {
        "id": model_id,
        "source": spec.source,
        "sha256": weights_sha256,
        "tags": spec.tags.model_dump(mode="json"),
        "weak": spec.weak,
        "params": int(sum(p.numel() for p in model.parameters())),
        "input_size": size,
        "embed_dim": int(emb.shape[1]),
        "num_outputs": num_outputs,
        "has_head": num_outputs == dataset.num_classes and getattr(model, "num_classes", num_outputs) != 0,
        "dataset": dataset.name,
        "builder": fetched.builder,
        "preprocess": fetched.preprocess,
        "preprocess_declared": spec.preprocess.model_dump(mode="json", exclude_none=True) if spec.preprocess else {},
        "training": fetched.training,
    }
