"""The study file: ``params.yaml`` loaded once into a validated, typed :class:`Study`.

A study is a dataset, a zoo of models (each with a source and methodology tags, ``zooscope.config.zoo``)
and the settings of every stage (``zooscope.config.settings``). Every error names the file, the offending
key and what is allowed there.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from zooscope.config._errors import Strict, StudyError, format_errors
from zooscope.config.settings import (EmbedSettings, EnsembleSettings, MistakesSettings, PredictSettings, ProbeSettings,
                                      ReportSettings, ShiftSettings, SimilaritySettings)
from zooscope.config.zoo import ModelSpec

__all__ = ["MODELS_DIGEST", "DatasetSpec", "Study", "dump_study", "load_study", "parse_study", "write_study"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class DatasetSpec(Strict):
    """Which images, and how they are split into train / calibration / eval."""

    source: str = Field(description="fashion-mnist | digits | imagefolder:<path> | torchvision:<Name>")
    root: str | None = Field(None, description="folder holding the files (IDX files, download root)")
    seed: int = 0
    train_size: int | float | None = Field(None, description="samples (int) or fraction (float) for train")
    calibration_size: int | float = 0.1
    eval_size: int | float | None = Field(None, description="None: the whole test set / the remainder")
    image_size: int | None = Field(None, ge=8, le=1024, description=(
        "imagefolder only: decode the images once into memory as RGB squares of this side (centre crop, resize), "
        "what recipe models train on; pretrained models still read the files at their own size"))

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        kind = v.split(":", 1)[0]
        allowed = ("fashion-mnist", "digits", "imagefolder", "torchvision")
        if kind not in allowed:
            raise ValueError(f"unknown dataset source {v!r}; allowed: {', '.join(allowed)} (imagefolder:<path>, torchvision:<Name>)")
        if kind in ("imagefolder", "torchvision") and not v.partition(":")[2]:
            raise ValueError(f"dataset source {v!r} needs a value after the colon, e.g. {kind}:<...>")
        return v

    @model_validator(mode="after")
    def _image_size_for_folders(self) -> DatasetSpec:
        if self.image_size is not None and not self.source.startswith("imagefolder:"):
            raise ValueError(f"image_size applies to imagefolder sources only; {self.source!r} has its own image size")
        return self

    @field_validator("train_size", "calibration_size", "eval_size")
    @classmethod
    def _positive(cls, v: int | float | None) -> int | float | None:
        if v is None:
            return v
        if isinstance(v, float) and not 0 < v < 1:
            raise ValueError(f"a fraction must lie in (0, 1), got {v}")
        if isinstance(v, int) and v <= 0:
            raise ValueError(f"a sample count must be positive, got {v}")
        return v


class Study(Strict):
    """A whole study declaration."""

    dataset: DatasetSpec
    base: str
    models: dict[str, ModelSpec] = Field(min_length=1)
    # the stages' sections may be left out (their defaults apply): the inputs stage writes the study with every
    # default filled in (:func:`dump_study`), and DVC tracks the stages' params in that file
    embed: EmbedSettings = EmbedSettings()
    probe: ProbeSettings = ProbeSettings()
    predict: PredictSettings = PredictSettings()
    ensemble: EnsembleSettings = EnsembleSettings()
    similarity: SimilaritySettings = SimilaritySettings()
    report: ReportSettings = ReportSettings()
    mistakes: MistakesSettings = MistakesSettings()
    shift: ShiftSettings = ShiftSettings()
    threads: int = Field(1, ge=1, description="CPU threads per stage (torch's, and the BLAS and OpenMP pools'): a "
                                              "param of every stage whose numbers depend on it")

    @field_validator("models")
    @classmethod
    def _safe_ids(cls, models: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        for mid in models:
            if not _SAFE_ID.fullmatch(str(mid)):
                raise ValueError(
                    f"model id {mid!r} is not allowed: DVC stage names take only letters, digits, '_' and '-'"
                )
        return models

    @model_validator(mode="after")
    def _references(self) -> Study:
        if self.base not in self.models:
            raise ValueError(f"base {self.base!r} is not a model id; ids: {', '.join(self.models)}")
        if len(self.models) < 2:
            raise ValueError(f"the zoo has one model ({self.base}); a study compares models, so it needs at least 2")
        return self

    @model_validator(mode="after")
    def _pixels_for_corruptions(self) -> Study:
        """Corruptions apply to the images held in memory, which an image folder has only at ``dataset.image_size``."""
        if self.shift.corruptions and self.dataset.source.startswith("imagefolder:") and self.dataset.image_size is None:
            raise ValueError("shift.corruptions corrupt the images held in memory, and an image folder has none: set "
                             "dataset.image_size (e.g. 224) to decode it at that size, or leave shift.corruptions empty")
        return self

    @model_validator(mode="after")
    def _pixels_for_recipes(self) -> Study:
        """Recipe architectures (trained here, or ``file:`` weights of one) are built for the dataset's own pixels,
        which an image folder has in memory only when ``dataset.image_size`` says at what size."""
        if self.dataset.source.startswith("imagefolder:") and self.dataset.image_size is None:
            native = [mid for mid, spec in self.models.items() if _reads_native_pixels(spec)]
            if native:
                raise ValueError(f"models {', '.join(native)}: a recipe architecture needs the images in memory at one size, "
                                 "and an image folder has none: set dataset.image_size (e.g. 32) to decode it at that size")
        return self


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys (plain YAML silently keeps the last)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden by explicit keys
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise StudyError(
                f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                f"(first at line {seen[key]}): each model id and setting may appear once"
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def parse_study(data: Any, *, source: str = "params.yaml") -> Study:
    """Validate an already-parsed study mapping; errors name ``source`` and the bad key."""
    if not isinstance(data, dict):
        raise StudyError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Study(**data)
    except ValidationError as err:
        raise StudyError(f"{source}: {format_errors(err, root=Study)}") from None


def load_study(path: str | Path = "params.yaml") -> Study:
    """Load and validate a study file: YAML (params.yaml), or JSON when its name ends in ``.json``."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise StudyError(f"{path}: study file not found") from None
    if path.suffix == ".json":  # the resolved study the inputs stage writes (write_study)
        data = _json_data(path, text)
        digest = data.pop(MODELS_DIGEST, None) if isinstance(data, dict) else None
        if isinstance(data, dict) and isinstance(data.get("models"), dict):
            data["models"] = {mid: _model_file(path, mid, name) for mid, name in data["models"].items()}
        study = parse_study(data, source=str(path))
        if digest != _models_digest(data["models"]):
            raise StudyError(f"{path}: {MODELS_DIGEST} does not match its models' files (edited by hand?): "
                             "they are written by the inputs stage; re-run it (dvc repro inputs)")
        return study
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except StudyError as err:
        raise StudyError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = getattr(err, "problem", None) or " ".join(str(err).split())
        raise StudyError(f"{path}: not valid YAML ({where}{what})") from None
    return parse_study(data, source=str(path))


def _json_data(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise StudyError(f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None


def _model_file(study_path: Path, mid: str, name: Any) -> Any:
    """The resolved entry of model ``mid``: the file that the study's ``models.<mid>`` names, beside the study."""
    if not isinstance(name, str):
        raise StudyError(f"{study_path}: models.{mid}: expected the name of the model's settings file (the inputs "
                         f"stage writes it), got {type(name).__name__}; re-run it (dvc repro inputs)")
    path = study_path.parent / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"{study_path}: models.{mid}: {path} not found; the inputs stage writes it: re-run it "
                         "(dvc repro inputs)") from None
    return _json_data(path, text)


#: The key of the resolved study (:func:`dump_study`) that holds a digest of its models' resolved entries.
MODELS_DIGEST = "models_digest"


def _models_digest(models: dict[str, Any]) -> str:
    """sha256 of a resolved ``models`` section (as JSON data), keys sorted: the zoo-wide stages' DVC param."""
    return hashlib.sha256(json.dumps(models, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def _reads_native_pixels(spec: ModelSpec) -> bool:
    """Whether a model is a recipe architecture fed the dataset's own pixels: one trained here, ``file:`` weights of
    one, or a compression of such a model (a compression is fed as its parent is)."""
    if spec.parent is not None:
        return _reads_native_pixels(spec.parent)
    return spec.kind == "recipe" or (spec.kind == "file" and not isinstance(spec.arch, str))


def dump_study(study: Study, *, folder: str) -> tuple[str, dict[str, str]]:
    """The study as JSON with every default filled in, in two parts: the study's own text, whose ``models`` names
    one file per model (``<folder>/<id>.json``, relative to the study's file), followed by :data:`MODELS_DIGEST`;
    and each model's resolved entry by that name. The sections and each model's keys come in the schema's order,
    the models in their declared order; the same study gives the same texts.

    Why this shape: every stage of ``dvc.yaml`` takes its DVC params from the study's file, and DVC finds each
    param by walking every leaf of the file (dpath), once per param of every stage: the zoo's entries were 480 of
    the file's 550 leaves and made the params check of a no-op ``dvc repro`` take 0.3 to 0.4 s. One model's
    ``fetch`` depends on the model's own file instead (the other stages read the model's card, not its entry), and
    the stages that read the whole zoo take the digest of the entries as their param: copies of the entries in
    ``dvc.lock``, which DVC parses and rewrites whole after every stage, made up a third of it. JSON, not YAML: DVC
    parses a params file once per stage that lists it, and its YAML parser takes about 15 ms where ``json`` takes
    0.1 ms. Loading the files (:func:`load_study`) checks the digest and gives the same :class:`Study`."""
    data = study.model_dump(mode="json")
    models = data["models"]
    data["models"] = {mid: f"{folder}/{mid}.json" for mid in models}
    data[MODELS_DIGEST] = _models_digest(models)
    return _json_text(data), {f"{folder}/{mid}.json": _json_text(entry) for mid, entry in models.items()}


def write_study(path: str | Path, study: Study) -> None:
    """Write the resolved study (:func:`dump_study`): ``path`` (``.json``) and its models' files in the folder of
    the same name beside it (``artifacts/settings.json``, ``artifacts/settings/<id>.json``), each atomically, the
    study's own file last; a file of a model no longer in the zoo is removed.

    Raises:
        ValueError: ``path`` does not end in ``.json``.
    """
    from zooscope.io import atomic_path

    path = Path(path)
    if path.suffix != ".json":
        raise ValueError(f"{path}: the resolved study is JSON: its name must end in .json")
    folder = path.with_suffix("")
    text, models = dump_study(study, folder=folder.name)
    for stale in folder.glob("*.json"):
        if f"{folder.name}/{stale.name}" not in models:
            stale.unlink()
    for name, model_text in models.items():
        with atomic_path(path.parent / name, suffix=".json") as tmp:
            tmp.write_text(model_text, encoding="utf-8")
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(text, encoding="utf-8")
