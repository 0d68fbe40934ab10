"""Where a report's numbers come from, for its footer: the study declaration (a digest of the validated
params.yaml) and the versions of the packages that computed them. No date or commit: the page is a DVC output and
stays byte-identical for the same inputs (``dvc.lock`` records which inputs those were)."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata

from zooscope.config import Study

__all__ = ["PACKAGES", "provenance"]

#: The packages whose versions the footer names, in this order.
PACKAGES = ("zooscope", "torch", "torchvision", "timm", "numpy", "scipy", "polars", "faiss-cpu", "faiss-gpu", "dvc")


def provenance(study: Study) -> str:
    """``study <sha256 prefix> · zooscope 0.x · torch 2.x · ...`` (packages that are not installed are left out)."""
    declared = json.dumps(study.model_dump(mode="json"), sort_keys=True).encode()
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return (f"study {hashlib.sha256(declared).hexdigest()[:12]} (sha256 of the validated params.yaml, {len(study.models)} "
            f"models, dataset {study.dataset.source}) · " + " · ".join(versions))
