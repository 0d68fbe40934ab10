"""Can this zoo answer the paper's question? Warnings about the experimental design of a study's zoo.

Gontijo-Lopes et al. trained every model independently, so their categories are cumulative: a pair of
category X also differs in everything below X, the random seed (initial weights and batch order)
included. A zoo whose variants share the base's seed measures "same initialisation, other X" instead,
which agrees more than the paper's X does. Each warning names the models and says what it does to which
number of the headline tables (``metrics/study.json``):

- ``shared-seed``: pairs of a category above reinit whose two models carry the same known ``tags.seed``;
- ``duplicate``: two models with the same tags, seed included (a reinit pair that is not re-initialised: for a
  recipe the same weights, kappa near 1);
- ``thin-category``: a category with fewer than 3 pairs, or fewer than 2 models besides the base, so its
  mean speaks for a handful of models (the interval over the zoo says how little);
- ``weak-in-mean``: a model flagged ``weak`` whose pairs enter the category means (the tables also give the
  means without weak models);
- ``tag-spelling``: two values of one tag that differ only in case or punctuation, which makes their pairs
  count as different when they are probably the same;
- ``no-parent``: a compressed model (``recipe:prune``, ``recipe:quantize``) whose ``train.parent`` is not the spec of
  a zoo member, so the compression table has no parent to compare it with.

A compressed model's pairs are in none of the categories (:data:`zooscope.vocab.COMPRESSION`), so the checks of the
categories leave them out.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from dataclasses import dataclass

from zooscope.config.study import Study
from zooscope.config.zoo import ModelSpec, compression_parents, trained_apart
from zooscope.vocab import CATEGORIES, METHODOLOGY_TAGS, pair_category

__all__ = ["ZooWarning", "lint_zoo", "MIN_PAIRS", "MIN_MODELS"]

#: A category mean wants at least this many pairs, and this many distinct models besides the base.
MIN_PAIRS, MIN_MODELS = 3, 2
#: Seed values that say the seed is not known (pretrained checkpoints): they are not taken as shared.
_UNKNOWN = frozenset({"unknown", "none", "na", "n/a", "?", ""})
_LISTED = 6  # pairs a warning names before it says how many more


@dataclass(frozen=True)
class ZooWarning:
    """One design problem of a zoo: its kind (see the module's docstring), the models it concerns, and a
    sentence that names them and says what it does to which number."""

    kind: str
    models: tuple[str, ...]
    message: str


def _known_seed(seed: object) -> str | None:
    text = str(seed).strip()
    return None if text.lower() in _UNKNOWN else text


def _shared_seeds(study: Study, pairs: dict[tuple[str, str], str]) -> list[ZooWarning]:
    groups: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    out = []
    for (a, b), cat in pairs.items():
        seed = _known_seed(study.models[a].tags.seed)
        if seed is None or seed != _known_seed(study.models[b].tags.seed):
            continue
        if cat != "reinit":
            groups[cat, seed].append((a, b))
        else:
            out.append(ZooWarning("duplicate", (a, b), (
                f"{a} and {b} carry the same tags, seed {seed} included: as a reinit pair they are not re-initialised "
                "(a recipe trains them to the same weights), which raises the reinit mean kappa towards 1; give one "
                "of them another tags.seed")))
    for (cat, seed), shared in sorted(groups.items(), key=lambda kv: CATEGORIES.index(kv[0][0])):
        names = ", ".join(f"{a}+{b}" for a, b in shared[:_LISTED]) + (
            f" and {len(shared) - _LISTED} more" if len(shared) > _LISTED else "")
        total = sum(c == cat for c in pairs.values())
        out.append(ZooWarning("shared-seed", tuple(sorted({m for pair in shared for m in pair})), (
            f"{len(shared)} of {total} {cat} pairs share training seed {seed} ({names}): they start from the same "
            f"initial weights and batch order, which the paper's {cat} pairs do not, so they raise the {cat} mean "
            f"kappa and lower its ensemble gain; give each model its own tags.seed")))
    return out


def _thin_categories(study: Study, pairs: dict[tuple[str, str], str]) -> list[ZooWarning]:
    out = []
    for cat in CATEGORIES:
        members = [pair for pair, c in pairs.items() if c == cat]
        if not members:
            continue
        others = sorted({m for pair in members for m in pair} - {study.base})
        if len(members) < MIN_PAIRS or len(others) < MIN_MODELS:
            out.append(ZooWarning("thin-category", tuple(others), (
                f"category {cat} has {len(members)} pair(s) among {len(others)} model(s) besides the base "
                f"({', '.join(others) or 'none'}): its mean rests on too few models to speak for {cat} pairs in "
                f"general (want >= {MIN_PAIRS} pairs and >= {MIN_MODELS} models); read its interval over the zoo")))
    return out


def _weak_in_means(study: Study, pairs: dict[tuple[str, str], str]) -> list[ZooWarning]:
    out = []
    for mid, spec in study.models.items():
        if not spec.weak or spec.parent is not None:
            continue
        cats = sorted({c for pair, c in pairs.items() if mid in pair}, key=CATEGORIES.index)
        n = sum(mid in pair for pair in pairs)
        out.append(ZooWarning("weak-in-mean", (mid,), (
            f"weak model {mid} enters the {', '.join(cats)} means through {n} pairs: a deliberately weak model "
            "lowers agreement and changes ensemble gain for reasons other than methodology; compare with the "
            "tables without weak models (categories_without_weak in metrics/study.json)")))
    return out


def _spelling(value: str) -> str:
    """A tag value without case, spaces, and '_' or '-' between letters (so 'lr=1.5' and 'lr=15' stay apart)."""
    return re.sub(r"(?<=[a-z])[_-](?=[a-z])|\s", "", value.lower())


def _tag_spellings(designed: dict[str, ModelSpec]) -> list[ZooWarning]:
    out = []
    for tag, cat in zip(METHODOLOGY_TAGS, CATEGORIES, strict=True):
        if tag == "seed":  # seeds are numbers or 'unknown': no spelling to compare
            continue
        by_value: dict[str, list[str]] = defaultdict(list)
        for mid, spec in designed.items():
            by_value[str(getattr(spec.tags, tag))].append(mid)
        for v1, v2 in itertools.combinations(sorted(by_value), 2):
            if _spelling(v1) == _spelling(v2):
                models = tuple(by_value[v1] + by_value[v2])
                out.append(ZooWarning("tag-spelling", models, (
                    f"tags.{tag} values {v1!r} ({', '.join(by_value[v1])}) and {v2!r} ({', '.join(by_value[v2])}) "
                    f"differ only in case or punctuation: their pairs count as {cat} pairs; write one spelling if "
                    "they mean the same")))
    return out


def _orphans(study: Study) -> list[ZooWarning]:
    parents = compression_parents(study.models)
    return [ZooWarning("no-parent", (mid,), (
        f"{mid} ({spec.source}) derives from a train.parent that is no zoo member: its accuracy, shifts and groups are "
        "measured, but nothing is compared with its parent; point train.parent at a member (parent: *<id>)"))
        for mid, spec in study.models.items() if spec.parent is not None and mid not in parents]


def lint_zoo(study: Study) -> list[ZooWarning]:
    """Every design warning about the study's zoo, over the pairs of the headline tables (those without a compressed
    model)."""
    designed = {mid: study.models[mid] for mid in trained_apart(study.models)}
    pairs = {(a, b): pair_category(designed[a].tags.model_dump(), designed[b].tags.model_dump())
             for a, b in itertools.combinations(designed, 2)}
    return [*_shared_seeds(study, pairs), *_thin_categories(study, pairs), *_weak_in_means(study, pairs),
            *_tag_spellings(designed), *_orphans(study)]
