"""The settings of each stage: one section of ``params.yaml`` per stage, with a default for every field, so a study
may leave a section out. DVC tracks each section as its stages' params in the resolved study (``dump_study``),
which holds the values actually used, defaults included."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, StrictBool, field_validator

from zooscope.config._errors import Strict
from zooscope.vocab import CORRUPTIONS, SEVERITIES

_SET_NAME = re.compile(r"[A-Za-z0-9_]+")

__all__ = ["EmbedSettings", "ProbeSettings", "PredictSettings", "EnsembleSettings", "SimilaritySettings",
           "ReportSettings", "MistakesSettings", "ShiftSettings"]


class EmbedSettings(Strict):
    batch_size: int = Field(256, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = Field(0, ge=0, description="processes decoding and resizing images for timm-style models "
                                                   "(0: in the stage's own process)")
    precision: Literal["auto", "float32", "bfloat16"] = Field("auto", description=(
        "the arithmetic of the forward pass: bfloat16 runs it under torch.autocast (embeddings and logits are still "
        "written as float32, rounded from bfloat16 activations: bench/gpu_check.py measures how far they move); auto "
        "is bfloat16 on a GPU that computes in it natively (Ampere and later) and float32 elsewhere, so the CPU "
        "keeps the default study's bytes. float32 on a GPU lets cuDNN use TF32 for convolutions (torch's default)"))


class ProbeSettings(Strict):
    l2_grid: tuple[float, ...] = Field((1e-4, 1e-3, 1e-2, 1e-1), min_length=1)
    max_iter: int = Field(100, ge=1, description="L-BFGS iterations per L2 value at most")
    tol: float = Field(1e-5, gt=0, lt=1, description="L-BFGS stops once an iteration lowers the objective by less "
                                                     "than this fraction (scipy's ftol)")
    knn_k: int = Field(20, ge=1)


class PredictSettings(Strict):
    ece_bins: int = Field(15, ge=1)


class EnsembleSettings(Strict):
    """The ``ensemble`` stage: agreement of errors, pair ensembles and the headline tables (docs/science.md 2-4)."""

    n_boot: int = Field(1000, ge=1000, description="bootstrap resamples over samples for every interval (docs/science.md: >= 1000)")
    seed: int = Field(0, description="seed of the bootstrap resamples")
    matched_band: float = Field(0.02, gt=0, le=1, description="accuracy-matched pairs: |acc_a - acc_b| <= this (0.02 = 2 points)")
    greedy_max_size: int = Field(10, ge=1, description="greedy forward selection grows the ensemble to this size (at most the zoo)")
    strongest: int = Field(3, ge=1, description="the most accurate models whose best partner is reported")
    class_groups: dict[str, tuple[int, ...]] = Field(
        default_factory=dict, description="named groups of class indices (e.g. tops: [0, 2, 4, 6]); per pair, which "
                                          "member is better on each group (artifacts/pairs_per_group.parquet)")

    @field_validator("class_groups")
    @classmethod
    def _disjoint_groups(cls, v: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        seen: dict[int, str] = {}
        for name, classes in v.items():
            if not classes or min(classes) < 0:
                raise ValueError(f"group {name!r} needs one or more class indices >= 0, got {list(classes)}")
            for c in classes:
                if c in seen:
                    raise ValueError(f"class {c} is in groups {seen[c]!r} and {name!r}; groups must not overlap")
                seen[c] = name
        return v


class SimilaritySettings(Strict):
    """The ``similarity`` stage: CKA, mutual k-NN with permutation nulls, and overlapping features (docs/science.md 5-6)."""

    knn_k: int = Field(10, ge=1, description="neighbours of the mutual k-NN alignment")
    n_perm: int = Field(20, ge=20, description="shuffles of each permutation null (docs/science.md: >= 20)")
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


class ReportSettings(Strict):
    """The ``report`` stage: the HTML report, its thumbnails and the comparison with an earlier commit."""

    thumbnails: int = Field(24, ge=0, le=200, description="eval-image thumbnails per image grid; 0: no images "
                                                             "(the dataset is then not loaded)")
    compare_to: str | None = Field("HEAD", description="git revision whose committed results the report compares "
                                                       "with (HEAD: the last commit); null: no comparison")


class MistakesSettings(Strict):
    """The ``mistakes`` stage: taxonomy, consensus errors, MMD-critic, adversarial transfer (docs/science.md 7)."""

    consensus_share: float = Field(0.75, gt=0, le=1, description="a consensus error: at least this share of the zoo "
                                                                  "predicts the same wrong class")
    neighbour_k: int = Field(10, ge=1, description="neighbours of the neighbour-disagreement vote (strongest model)")
    top_confusions: int = Field(5, ge=1, description="most frequent confusion pairs kept per model")
    near_miss_k: int | None = Field(None, ge=1, description="a near miss: wrong, but the label among the top k "
                                                            "(k below the number of classes); null: 5 from 100 "
                                                            "classes on, else 2")
    explain_k: int = Field(8, ge=1, description="nearest training samples that explain an example")
    show: int = Field(24, ge=0, description="consensus errors and adversarial examples explained for the report")
    prototypes: int = Field(8, ge=1, description="MMD-critic prototypes per class and model")
    criticisms: int = Field(4, ge=0, description="MMD-critic criticisms per class and model")
    gamma: float | None = Field(None, gt=0, description="RBF gamma; null: the median heuristic")
    max_candidates: int | None = Field(2000, ge=2, description="MMD-critic picks among this many samples per class "
                                                              "(a seeded subset); null: all")
    attacks: StrictBool = Field(True, description="adversarial robustness, transfer and examples (the stage's longest "
                                                   "part); false: none of them is computed or written, and the "
                                                   "report says so")
    attack_subset: int = Field(200, ge=1, description="eval samples attacked (a seeded subset)")
    eps: tuple[float, ...] = Field((0.01, 0.03, 0.1), min_length=1, description="L_inf budgets on [0, 1] pixels")
    pgd_steps: int = Field(5, ge=1, description="PGD steps (step size 2.5 eps / steps, random start)")
    transfer_attack: Literal["fgsm", "pgd"] = "pgd"
    transfer_eps: float = Field(0.03, gt=0, le=1, description="budget of the transfer matrix's examples")
    n_boot: int = Field(1000, ge=1000, description="bootstrap resamples over the attacked samples for the transfer "
                                                   "rates' intervals")
    seed: int = 0

    @field_validator("eps")
    @classmethod
    def _budgets(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < e <= 1 for e in v) or any(a >= b for a, b in zip(v, v[1:])):
            raise ValueError(f"eps must be increasing budgets in (0, 1], e.g. [0.01, 0.03, 0.1], got {list(v)}")
        return v


class ShiftSettings(Strict):
    """The ``shifted`` and ``shift`` stages: the zoo on shifted eval sets (docs/science.md 9)."""

    corruptions: dict[str, tuple[int, ...]] = Field(
        default_factory=dict, description="corruption -> severities (1 to 5): one shifted set per pair, the eval "
                                          "images corrupted before each model's own preprocessing (names: "
                                          "zooscope.shift.corruptions.CORRUPTIONS); needs images held in memory")
    folders: dict[str, str] = Field(
        default_factory=dict, description="name -> an image folder of the dataset's classes (a sub-folder per class, "
                                          "named as the class or by its index; e.g. ImageNet-V2, -Sketch, -R): a "
                                          "shifted set of other images than the eval split's, every image of it")
    eval_size: int | None = Field(None, ge=1, description="the shifted sets corrupt this many eval images (a seeded "
                                                          "subset, the same for every set and model); null: all")
    seed: int = Field(0, ge=0, description="seed of the corruptions' noise and of the eval subset")

    @field_validator("corruptions")
    @classmethod
    def _known_corruptions(cls, v: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        for name, severities in v.items():
            if name not in CORRUPTIONS:
                raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
            if not severities or any(s not in SEVERITIES for s in severities) or len(set(severities)) < len(severities):
                raise ValueError(f"corruption {name}: severities must be distinct values of {list(SEVERITIES)}, "
                                 f"got {list(severities)}")
        return v

    @field_validator("folders")
    @classmethod
    def _folder_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not _SET_NAME.fullmatch(name) or name in ("clean", "mean"):
                raise ValueError(f"folder set {name!r}: a name takes letters, digits and '_' (no '-', which corrupted "
                                 "sets' names use) and is not 'clean' or 'mean'")
        return v
