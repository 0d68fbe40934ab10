"""One zoo member's declaration: where its weights come from, its methodology tags, and, for models
trained here, the architecture and the recipe's options."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from zooscope.config._errors import Strict, format_errors

__all__ = ["SOURCE_KINDS", "RECIPES", "ARCH_KINDS", "Tags", "ArchSpec", "Augment", "Imbalance", "SupervisedTrain",
           "TeacherSpec",
           "DistillTrain", "SimCLRTrain", "AutoencoderTrain", "RandomFeaturesTrain", "PruneTrain", "QuantizeTrain",
           "COMPRESSION_RECIPES", "PreprocessSpec", "ModelSpec", "recipe_train_options", "teacher_of",
           "compression_parents", "compression_roots", "same_model", "trained_apart"]

#: Source prefixes a model may come from.
SOURCE_KINDS = ("recipe", "timm", "torchvision", "hf-hub", "file")
#: Training recipes the pipeline implements (``recipe:<name>``; ``zooscope.zoo.recipes`` has one function each).
RECIPES = ("supervised", "distill", "simclr", "autoencoder", "random_features", "prune", "quantize")
#: Recipes that derive a model from a parent (``train.parent``) instead of training one from scratch.
COMPRESSION_RECIPES = ("prune", "quantize")
#: Architectures recipes can build (``arch.kind``; ``zooscope.zoo.arch`` has one builder each).
ARCH_KINDS = ("cnn", "mlp", "timm_resnet", "timm_vit")


class Tags(Strict):
    """Methodology tags (Gontijo-Lopes et al. 2022): what was varied to train this model."""

    seed: int | str
    hyperparameters: str
    architecture: str
    framework: str
    data: str


class ArchSpec(Strict):
    """A network that recipes build for the dataset's image size (see ``zooscope.zoo.arch``)."""

    kind: Literal[ARCH_KINDS]  # type: ignore[valid-type]
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


class Augment(Strict):
    shift: int = 0
    hflip: float = 0.0
    erase: float = 0.0
    erase_size: int = 7


class Imbalance(Strict):
    """A class-imbalanced training set: of the training subset's samples of class ``label``, a seeded ``keep``
    share stays (at least one), every other class whole. The same (label, keep, seed) on the same subset keeps the
    same samples, so a teacher and its student can share one imbalanced set."""

    label: int = Field(ge=0, description="the class made rare (its index; below the dataset's number of classes)")
    keep: float = Field(gt=0, lt=1, description="the share of its training samples kept, in (0, 1)")
    seed: int = Field(0, description="draws which of them stay (numpy's default_rng(seed))")


class _TrainBase(Strict):
    epochs: int = Field(5, ge=0)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    subset: Literal["train", "disjoint"] = "train"
    imbalance: Imbalance | None = None


class SupervisedTrain(_TrainBase):
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.9
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: Augment = Augment()


class TeacherSpec(Strict):
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


class RandomFeaturesTrain(Strict):
    subset: Literal["train", "disjoint"] = "train"


class PruneTrain(_TrainBase):
    """Global magnitude pruning of ``parent`` (``torch.nn.utils.prune``): the ``sparsity`` share of the weights of
    every convolution and linear layer taken together, smallest magnitude first, set to zero; then ``epochs`` of
    fine-tuning on the training subset with the pruned weights held at zero (0: none, the default). The parent is
    rebuilt inside the model's fetch from its spec (a YAML anchor to a zoo member: ``parent: *cnn_base``), as a
    distilled model's teacher is, so DVC tracks it with the model. Fine-tuning holds the subset's inputs in memory,
    at the network's input size."""

    parent: ModelSpec
    sparsity: float = Field(gt=0, lt=1, description="the share of conv and linear weights set to zero, in (0, 1)")
    epochs: int = Field(0, ge=0, description="fine-tuning epochs after pruning (0: none)")
    lr: float = Field(5e-4, gt=0)
    subset: Literal["train", "disjoint"] | None = Field(
        None, description="what it fine-tunes on; None: the parent's training data (its subset and imbalance; the train "
                          "split for a model not trained here); a subset given here comes with this model's imbalance")


class QuantizeTrain(Strict):
    """Int8 post-training quantisation of ``parent`` (torch's x86 default: weights per output channel, symmetric
    int8; the input of every convolution and linear layer per tensor, unsigned 7-bit range, its scale from a histogram
    observer over ``calibration_images`` seeded training images). The network keeps float storage of the int8 values
    (each weight is its integer times its scale) and quantises activations as it runs, so gradients pass (straight
    through) and every later stage reads it as any other model."""

    parent: ModelSpec
    calibration_images: int = Field(512, ge=1, description="training images the activation ranges are observed on")
    subset: Literal["train", "disjoint"] | None = Field(
        None, description="where they are drawn from; None: the parent's training subset (train for a model not "
                          "trained here)")


_RECIPE_OPTIONS: dict[str, type[Strict]] = {
    "supervised": SupervisedTrain,
    "distill": DistillTrain,
    "simclr": SimCLRTrain,
    "autoencoder": AutoencoderTrain,
    "random_features": RandomFeaturesTrain,
    "prune": PruneTrain,
    "quantize": QuantizeTrain,
}


class PreprocessSpec(Strict):
    """A model's own input pipeline, declared where its source's default is wrong for it: each key given replaces the
    default of a ``timm:``, ``hf-hub:`` or ``torchvision:`` model, or of a ``file:`` checkpoint of a timm architecture
    (timm's pretrained config: 224 px, crop 0.875 to 0.95, ImageNet's mean and std), so a checkpoint trained at 32 px
    is fed 32 px. A ``file:`` checkpoint of an ``arch`` mapping reads the dataset's own pixels: only ``mean`` and
    ``std`` apply (default: the training split's). What a model was fed is its card's ``preprocess``."""

    size: int | None = Field(None, ge=1, description="the input's side in pixels: the network sees size x size")
    crop_pct: float | None = Field(None, gt=0, le=1, description="resize to size / crop_pct, then crop size")
    crop_mode: Literal["center", "squash", "border"] | None = Field(None, description="how the crop is taken (timm)")
    interpolation: Literal["bilinear", "bicubic", "nearest"] | None = None
    mean: tuple[float, ...] | None = Field(None, min_length=1, description="per channel, of pixels in [0, 1]")
    std: tuple[float, ...] | None = Field(None, min_length=1, description="per channel, each above 0")

    @field_validator("std")
    @classmethod
    def _positive_std(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is not None and min(v) <= 0:
            raise ValueError(f"every std must be above 0, got {list(v)}")
        return v

    @model_validator(mode="after")
    def _channels_agree(self) -> PreprocessSpec:
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} channels and std {len(self.std)}: give one value per channel")
        return self


class ModelSpec(Strict):
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
    preprocess: PreprocessSpec | None = Field(None, description="the model's own input pipeline, over its source's")

    @field_validator("arch", mode="before")
    @classmethod
    def _arch_mapping(cls, v: Any) -> Any:
        """Validate a mapping as ArchSpec here, so errors name its keys rather than the union's members."""
        if isinstance(v, dict):
            try:
                return ArchSpec(**v)
            except ValidationError as err:
                raise ValueError(format_errors(err, root=ArchSpec)) from None
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
        if kind == "recipe" and self.target in COMPRESSION_RECIPES:
            if self.arch is not None:
                raise ValueError(f"recipe:{self.target} takes its architecture from train.parent: leave out 'arch'")
            if not isinstance(self.tags.seed, int):
                raise ValueError(f"tags.seed must be an integer for recipe sources (it seeds the recipe), got {self.tags.seed!r}")
            recipe_train_options(self)
        elif kind == "recipe":
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
        if self.preprocess is not None:
            self._check_preprocess(self.preprocess)
        return self

    def _check_preprocess(self, pre: PreprocessSpec) -> None:
        if self.kind == "recipe":
            raise ValueError("'preprocess' does not apply to recipe sources: a recipe normalises the pixels it trains on")
        if self.kind == "file" and not isinstance(self.arch, str):
            fed_as_is = [k for k in ("size", "crop_pct", "crop_mode", "interpolation") if getattr(pre, k) is not None]
            if fed_as_is:
                raise ValueError(f"preprocess: {', '.join(fed_as_is)} do not apply to a file: checkpoint of an arch "
                                 "mapping (it reads the dataset's own pixels): only mean and std do")

    @property
    def kind(self) -> str:
        return self.source.partition(":")[0]

    @property
    def target(self) -> str:
        return self.source.partition(":")[2]

    @property
    def local_file(self) -> str | None:
        """The local weights file this model is read from (``file:`` checkpoints, a timm ``pretrained_file``; a
        compressed model reads its parent's)."""
        if self.parent is not None:
            return self.parent.local_file
        return self.target if self.kind == "file" else self.pretrained_file

    @property
    def parent(self) -> ModelSpec | None:
        """The spec of the model a ``recipe:prune`` or ``recipe:quantize`` model derives from (else None)."""
        if self.kind != "recipe" or self.target not in COMPRESSION_RECIPES:
            return None
        return recipe_train_options(self).parent  # type: ignore[attr-defined]


def recipe_train_options(spec: ModelSpec) -> Strict:
    """The typed ``train`` options of a recipe (or file:) model."""
    name = spec.target if spec.kind == "recipe" else "supervised"
    cls = _RECIPE_OPTIONS[name]
    try:
        return cls(**(spec.train or {}))
    except ValidationError as err:
        raise ValueError(f"train options of recipe {name!r}: {format_errors(err, root=cls, prefix='train')}") from None


PruneTrain.model_rebuild()
QuantizeTrain.model_rebuild()


def _resolved(spec: ModelSpec) -> dict[str, Any]:
    """The spec as a dict with a recipe's train options resolved (every default written out)."""
    train = recipe_train_options(spec).model_dump() if spec.kind == "recipe" else spec.train
    return spec.model_dump(exclude={"train"}) | {"train": train}


def same_model(a: ModelSpec, b: ModelSpec) -> bool:
    """Whether two specs build the same model: equal once their recipes' train options are resolved, so a spec that
    writes a default out (``epochs: 5``) is the same as one that leaves it out."""
    return _resolved(a) == _resolved(b)


def _member(models: dict[str, ModelSpec], spec: ModelSpec, *, besides: str) -> str | None:
    """The first declared zoo member other than ``besides`` that is the same model as ``spec`` (None: none is)."""
    return next((mid for mid, other in models.items() if mid != besides and same_model(other, spec)), None)


def trained_apart(models: dict[str, ModelSpec]) -> list[str]:
    """The ids of the models that are no compression of another (``recipe:prune``, ``recipe:quantize``), in order: the
    zoo whose pairs the methodology categories, the zoo bootstrap, the probit line, partner choice and the consensus
    votes speak for (a compression is nearly a copy of its parent and would count it twice)."""
    return [mid for mid, spec in models.items() if spec.parent is None]


def compression_parents(models: dict[str, ModelSpec]) -> dict[str, str]:
    """compressed model id -> the id of its parent in the zoo, for every ``recipe:prune`` / ``recipe:quantize`` model
    whose ``train.parent`` is the spec of a zoo member (the first declared, where several share it). A compressed
    model whose parent is not in the zoo is left out."""
    out = {}
    for mid, spec in models.items():
        parent = spec.parent
        found = None if parent is None else _member(models, parent, besides=mid)
        if found is not None:
            out[mid] = found
    return out


def compression_roots(models: dict[str, ModelSpec]) -> dict[str, str]:
    """compressed model id -> its family's root: the zoo model reached by following parents up while they are in the
    zoo (a quantised pruned model's root is the pruned model's parent). Every compressed model is a key, its own root
    when its parent is not in the zoo: :func:`zooscope.vocab.pair_categories` puts its pairs with the rest of the zoo
    outside the paper's categories either way."""
    parents = compression_parents(models)
    roots = {}
    for mid, spec in models.items():
        if spec.parent is None:
            continue
        root, seen = mid, {mid}
        while root in parents and parents[root] not in seen:
            root = parents[root]
            seen.add(root)
        roots[mid] = root
    return roots


def teacher_of(models: dict[str, ModelSpec]) -> dict[str, str]:
    """student id -> the id of its teacher in the zoo, for every ``recipe:distill`` model whose inline ``teacher`` is
    the spec of a zoo member (source, tags, arch, train options with their defaults, weak): the teacher a distilled
    model learns from is retrained inside its fetch from that spec with the spec's seed, so it has that member's
    weights. Two members with one spec train to the same weights, so the first declared stands for both. A student
    whose teacher is not in the zoo is left out (nothing to compare it with)."""
    out = {}
    for student, spec in models.items():
        if spec.kind != "recipe" or spec.target != "distill":
            continue
        teacher = recipe_train_options(spec).teacher  # type: ignore[attr-defined]
        found = _member(models, ModelSpec(**teacher.model_dump()), besides=student)
        if found is not None:
            out[student] = found
    return out
