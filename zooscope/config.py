"""The study schema: ``params.yaml`` loaded once into validated, typed objects.

A study is a dataset, a zoo of models (each with a source and methodology tags) and the settings
of every stage. Every error names the offending key and what is allowed there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "METHODOLOGY_TAGS",
    "SOURCE_KINDS",
    "StudyError",
    "Study",
    "ModelSpec",
    "DatasetSpec",
    "load_study",
    "parse_study",
    "recipe_train_options",
]

#: Methodology tags of a model card, in order of increasing methodology distance (science.md section 4).
METHODOLOGY_TAGS = ("seed", "hyperparameters", "architecture", "framework", "data")
#: Source prefixes a model may come from.
SOURCE_KINDS = ("recipe", "timm", "torchvision", "hf-hub", "file")
#: Training recipes the pipeline implements (``recipe:<name>``).
RECIPES = ("supervised", "distill", "simclr", "autoencoder", "random_features")
#: Architectures recipes can build (``arch.kind``).
ARCH_KINDS = ("cnn", "mlp", "timm_resnet", "timm_vit")

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class StudyError(ValueError):
    """A study declaration that cannot be used; the message names the file and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- dataset


class DatasetSpec(_Strict):
    """Which images, and how they are split into train / calibration / eval."""

    source: str = Field(description="fashion-mnist | digits | imagefolder:<path> | torchvision:<Name>")
    root: str | None = Field(None, description="folder holding the files (IDX files, download root)")
    seed: int = 0
    train_size: int | float | None = Field(None, description="samples (int) or fraction (float) for train")
    calibration_size: int | float = 0.1
    eval_size: int | float | None = Field(None, description="None: the whole test set / the remainder")

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


# --------------------------------------------------------------------------- models


class Tags(_Strict):
    """Methodology tags (Gontijo-Lopes et al. 2022): what was varied to train this model."""

    seed: int | str
    hyperparameters: str
    architecture: str
    framework: str
    data: str


class ArchSpec(_Strict):
    """A network that recipes build for the dataset's image size (see ``zooscope.zoo.arch``)."""

    kind: Literal["cnn", "mlp", "timm_resnet", "timm_vit"]
    widths: tuple[int, ...] = (16, 32, 64)
    hidden: int | tuple[int, ...] = 128
    dropout: float = 0.0
    embedding: Literal["hidden", "conv+hidden"] = "hidden"
    layers: tuple[int, ...] = (1, 1, 1, 1)
    patch: int = 7
    dim: int = 96
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0


class Augment(_Strict):
    shift: int = 0
    hflip: float = 0.0
    erase: float = 0.0
    erase_size: int = 7


class _TrainBase(_Strict):
    epochs: int = Field(5, ge=0)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    subset: Literal["train", "disjoint"] = "train"


class SupervisedTrain(_TrainBase):
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.9
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: Augment = Augment()


class TeacherSpec(_Strict):
    """The teacher a distilled model learns from, declared inline so DVC tracks it with the student.

    Use a YAML anchor to point at the base model's spec (``teacher: *base``): the teacher is retrained
    inside the student's stage with the same seed, which gives weights identical to that model's.
    """

    source: Literal["recipe:supervised"] = "recipe:supervised"
    tags: Tags
    arch: ArchSpec
    train: SupervisedTrain = SupervisedTrain()
    weak: bool = False


class DistillTrain(SupervisedTrain):
    teacher: TeacherSpec
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)


class SimCLRTrain(_TrainBase):
    temperature: float = Field(0.5, gt=0)
    projection_dim: int = 64


class AutoencoderTrain(_TrainBase):
    noise: float = Field(0.2, ge=0)


class RandomFeaturesTrain(_Strict):
    subset: Literal["train", "disjoint"] = "train"


_RECIPE_OPTIONS: dict[str, type[_Strict]] = {
    "supervised": SupervisedTrain,
    "distill": DistillTrain,
    "simclr": SimCLRTrain,
    "autoencoder": AutoencoderTrain,
    "random_features": RandomFeaturesTrain,
}


class ModelSpec(_Strict):
    """One zoo member: where its weights come from and how it was trained."""

    source: str
    tags: Tags
    arch: ArchSpec | str | None = Field(
        None, description="recipe/file sources: an ArchSpec mapping, or a timm model name for file: weights"
    )
    train: dict[str, Any] | None = Field(None, description="recipe options (or, for file:, how it was trained)")
    weights: str | None = Field(None, description="torchvision: weights enum name (default DEFAULT)")
    num_classes: int | None = Field(None, description="file:/timm: classifier size when it differs from the default")
    pretrained_file: str | None = Field(None, description="timm: load this local file instead of the hub's weights")
    weak: bool = Field(False, description="a deliberately weak member (kept on purpose, flagged in tables)")

    @field_validator("arch", mode="before")
    @classmethod
    def _arch_mapping(cls, v: Any) -> Any:
        """Validate a mapping as ArchSpec here, so errors name its keys rather than the union's members."""
        if isinstance(v, dict):
            try:
                return ArchSpec(**v)
            except ValidationError as err:
                raise ValueError(_format_errors(err, root=ArchSpec)) from None
        return v

    @field_validator("source")
    @classmethod
    def _known_prefix(cls, v: str) -> str:
        kind, sep, rest = v.partition(":")
        if not sep or kind not in SOURCE_KINDS or not rest:
            raise ValueError(
                f"unknown model source {v!r}; allowed prefixes: "
                + ", ".join(f"{k}:<...>" for k in SOURCE_KINDS)
            )
        if kind == "recipe" and rest not in RECIPES:
            raise ValueError(f"unknown recipe {rest!r}; allowed: {', '.join(RECIPES)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        kind = self.kind
        if kind == "recipe":
            if not isinstance(self.arch, ArchSpec):
                raise ValueError("recipe sources need 'arch' as a mapping with 'kind' (one of " + ", ".join(ARCH_KINDS) + ")")
            if not isinstance(self.tags.seed, int):
                raise ValueError(f"tags.seed must be an integer for recipe sources (it seeds training), got {self.tags.seed!r}")
            recipe_train_options(self)  # validates the options
        elif kind == "file" and self.arch is None:
            raise ValueError("file: sources need 'arch': a timm model name or an ArchSpec mapping")
        elif kind in ("timm", "hf-hub", "torchvision") and self.arch is not None:
            raise ValueError(f"'arch' is not used by {kind}: sources (the hub names the architecture)")
        if self.weights is not None and kind != "torchvision":
            raise ValueError("'weights' only applies to torchvision: sources")
        if self.pretrained_file is not None and kind != "timm":
            raise ValueError("'pretrained_file' only applies to timm: sources")
        return self

    @property
    def kind(self) -> str:
        return self.source.partition(":")[0]

    @property
    def target(self) -> str:
        return self.source.partition(":")[2]


def recipe_train_options(spec: ModelSpec) -> _Strict:
    """The typed ``train`` options of a recipe (or file:) model."""
    name = spec.target if spec.kind == "recipe" else "supervised"
    cls = _RECIPE_OPTIONS[name]
    try:
        return cls(**(spec.train or {}))
    except ValidationError as err:
        raise ValueError(f"train options of recipe {name!r}: {_format_errors(err, root=cls, prefix='train')}") from None


# --------------------------------------------------------------------------- stage settings


class EmbedSettings(_Strict):
    batch_size: int = Field(256, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = Field(0, ge=0)


class ProbeSettings(_Strict):
    l2_grid: tuple[float, ...] = Field((1e-4, 1e-3, 1e-2, 1e-1), min_length=1)
    max_iter: int = Field(100, ge=1, description="L-BFGS iterations per L2 value at most")
    tol: float = Field(1e-5, gt=0, lt=1, description="L-BFGS stops once an iteration lowers the objective by less "
                                                     "than this fraction (scipy's ftol)")
    knn_k: int = Field(20, ge=1)


class PredictSettings(_Strict):
    ece_bins: int = Field(15, ge=1)


class EnsembleSettings(_Strict):
    """The ``ensemble`` stage: agreement of errors, pair ensembles and the headline tables (science.md 2-4)."""

    n_boot: int = Field(1000, ge=1000, description="bootstrap resamples over samples for every interval (science.md: >= 1000)")
    seed: int = Field(0, description="seed of the bootstrap resamples")
    matched_band: float = Field(0.02, gt=0, le=1, description="accuracy-matched pairs: |acc_a - acc_b| <= this (0.02 = 2 points)")
    greedy_max_size: int = Field(10, ge=1, description="greedy forward selection grows the ensemble to this size (at most the zoo)")
    strongest: int = Field(3, ge=1, description="the most accurate models whose best partner is reported")


class SimilaritySettings(_Strict):
    """The ``similarity`` stage: CKA, mutual k-NN with permutation nulls, and overlapping features (science.md 5-6)."""

    knn_k: int = Field(10, ge=1, description="neighbours of the mutual k-NN alignment")
    n_perm: int = Field(20, ge=20, description="shuffles of each permutation null (science.md: >= 20)")
    seed: int = Field(0, description="seed of the permutations and of the feature mixes")
    concat_all_up_to: int = Field(
        16, ge=2, description="zoos of at most this many models get a concatenated probe for every pair; larger ones "
                              "for the most and least similar pairs of each category")
    mix_fractions: tuple[float, ...] = Field((0.0, 0.25, 0.5, 0.75, 1.0), min_length=2,
                                             description="shares of the feature budget taken from model a")
    mix_dim: int | None = Field(None, ge=2, description="feature budget of the mixes; null: the smaller embedding width "
                                                        "(also the cap)")
    mix_max_pairs: int | None = Field(
        None, ge=1, description="mix curves for at most this many of the extreme pairs, the zoo's most and least "
                                "similar first (each curve is one probe per share); null: every extreme pair")

    @field_validator("mix_fractions")
    @classmethod
    def _increasing_shares(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 <= f <= 1 for f in v) or any(a >= b for a, b in zip(v, v[1:])):
            raise ValueError(f"shares must be increasing values in [0, 1], e.g. [0, 0.25, 0.5, 0.75, 1], got {list(v)}")
        return v


class ReportSettings(_Strict):
    """The ``report`` stage: the HTML report, its thumbnails and the comparison with an earlier commit."""

    thumbnails: int = Field(24, ge=0, le=200, description="eval-image thumbnails per image grid; 0: no images "
                                                             "(the dataset is then not loaded)")
    compare_to: str | None = Field("HEAD", description="git revision whose committed results the report compares "
                                                       "with (HEAD: the last commit); null: no comparison")
class MistakesSettings(_Strict):
    """The ``mistakes`` stage: taxonomy, consensus errors, MMD-critic, adversarial transfer (science.md 7)."""

    consensus_share: float = Field(0.75, gt=0, le=1, description="a consensus error: at least this share of the zoo "
                                                                  "predicts the same wrong class")
    neighbour_k: int = Field(10, ge=1, description="neighbours of the neighbour-disagreement vote (strongest model)")
    top_confusions: int = Field(5, ge=1, description="most frequent confusion pairs kept per model")
    explain_k: int = Field(8, ge=1, description="nearest training samples that explain an example")
    show: int = Field(24, ge=0, description="consensus errors and adversarial examples explained for the report")
    prototypes: int = Field(8, ge=1, description="MMD-critic prototypes per class and model")
    criticisms: int = Field(4, ge=0, description="MMD-critic criticisms per class and model")
    gamma: float | None = Field(None, gt=0, description="RBF gamma; null: the median heuristic")
    max_candidates: int | None = Field(2000, ge=2, description="MMD-critic picks among this many samples per class "
                                                              "(a seeded subset); null: all")
    attack_subset: int = Field(200, ge=1, description="eval samples attacked (a seeded subset)")
    eps: tuple[float, ...] = Field((0.01, 0.03, 0.1), min_length=1, description="L_inf budgets on [0, 1] pixels")
    pgd_steps: int = Field(5, ge=1, description="PGD steps (step size 2.5 eps / steps, random start)")
    transfer_attack: Literal["fgsm", "pgd"] = "pgd"
    transfer_eps: float = Field(0.03, gt=0, le=1, description="budget of the transfer matrix's examples")
    seed: int = 0

    @field_validator("eps")
    @classmethod
    def _budgets(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < e <= 1 for e in v) or any(a >= b for a, b in zip(v, v[1:])):
            raise ValueError(f"eps must be increasing budgets in (0, 1], e.g. [0.01, 0.03, 0.1], got {list(v)}")
        return v


class Study(_Strict):
    """A whole study declaration."""

    dataset: DatasetSpec
    base: str
    models: dict[str, ModelSpec] = Field(min_length=1)
    # stage sections are required (not defaulted): DVC tracks them as the stages' params
    embed: EmbedSettings
    probe: ProbeSettings
    predict: PredictSettings
    ensemble: EnsembleSettings
    similarity: SimilaritySettings
    report: ReportSettings
    mistakes: MistakesSettings
    threads: int = Field(ge=1, description="torch CPU threads per stage")

    @field_validator("models")
    @classmethod
    def _safe_ids(cls, models: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        for mid in models:
            if not _SAFE_ID.match(str(mid)):
                raise ValueError(
                    f"model id {mid!r} is not allowed: DVC stage names take only letters, digits, '_' and '-'"
                )
        return models

    @model_validator(mode="after")
    def _references(self) -> Study:
        if self.base not in self.models:
            raise ValueError(f"base {self.base!r} is not a model id; ids: {', '.join(self.models)}")
        return self


# --------------------------------------------------------------------------- loading


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


def _format_errors(err: ValidationError, *, root: type[BaseModel], prefix: str = "") -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            allowed = _allowed_keys(root, e["loc"])
            if allowed:
                msg += f"; allowed here: {', '.join(allowed)}"
        elif e["type"] == "literal_error":
            msg = f"{msg}, got {e.get('input')!r}"
        parts.append(f"{loc or '<root>'}: {msg}")
    return "; ".join(parts)


def _allowed_keys(root: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the schema class that rejected an unknown key at ``loc``."""
    cls, parts, i = root, list(loc[:-1]), 0
    while i < len(parts):
        field = cls.model_fields.get(str(parts[i]))
        if field is None:
            return []
        if cls is Study and parts[i] == "models":
            cls, i = ModelSpec, i + 2  # skip the model id
            continue
        inner = [a for a in getattr(field.annotation, "__args__", (field.annotation,))
                 if isinstance(a, type) and issubclass(a, BaseModel)]
        if not inner:
            return []
        cls, i = inner[0], i + 1
    return list(cls.model_fields)


def parse_study(data: Any, *, source: str = "params.yaml") -> Study:
    """Validate an already-parsed study mapping; errors name ``source`` and the bad key."""
    if not isinstance(data, dict):
        raise StudyError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    known = set(Study.model_fields)
    data = {k: v for k, v in data.items() if k in known or k not in _FOREIGN_SECTIONS}
    try:
        return Study(**data)
    except ValidationError as err:
        raise StudyError(f"{source}: {_format_errors(err, root=Study)}") from None


#: Top-level sections that belong to later stages (pairwise analysis, report, ...) and are validated there.
_FOREIGN_SECTIONS = frozenset({"flow"})


def load_study(path: str | Path = "params.yaml") -> Study:
    """Load and validate a study file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise StudyError(f"{path}: study file not found") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except StudyError as err:
        raise StudyError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise StudyError(f"{path}: not valid YAML ({err})") from None
    return parse_study(data, source=str(path))
