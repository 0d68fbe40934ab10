"""The study's vocabulary, in one place: methodology tags and the categories of a pair (Gontijo-Lopes et al.
2022), the two pair subsets of the headline tables, and the statistics those tables report.

A pair's category is the most divergent methodology tag on which the two model cards differ, in the
order reinit < hyperparameters < architecture < framework < dataset. Two cards that differ in no tag
(two checkpoints of one recipe whose seeds are unknown) are a ``reinit`` pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

__all__ = ["METHODOLOGY_TAGS", "CATEGORIES", "GROUPS", "group_rank", "pair_category", "Subset", "SUBSETS",
           "CATEGORY_STATS", "CORRUPTIONS", "SEVERITIES", "COMPRESSION", "COMPRESSED_OTHER", "pair_categories"]

#: Methodology tags of a model card, in order of increasing methodology distance.
METHODOLOGY_TAGS = ("seed", "hyperparameters", "architecture", "framework", "data")
#: Category names in order of increasing methodology distance, one per tag of METHODOLOGY_TAGS.
CATEGORIES = ("reinit", "hyperparameters", "architecture", "framework", "dataset")
#: How a model relates to the base model, in display order: the base itself, then its category with the base.
GROUPS = ("base", *CATEGORIES)
_BY_TAG = dict(zip(METHODOLOGY_TAGS, CATEGORIES, strict=True))


def group_rank(group: str) -> int:
    """The display position of a group of :data:`GROUPS` (an unknown name sorts last)."""
    return GROUPS.index(group) if group in GROUPS else len(GROUPS)


def pair_category(tags_a: Mapping[str, Any], tags_b: Mapping[str, Any]) -> str:
    """The category of a pair from the two models' methodology tags (keys: seed, hyperparameters,
    architecture, framework, data)."""
    missing = [t for t in METHODOLOGY_TAGS if t not in tags_a or t not in tags_b]
    if missing:
        raise ValueError(f"methodology tags missing: {', '.join(missing)}; every card needs {', '.join(METHODOLOGY_TAGS)}")
    for tag in reversed(METHODOLOGY_TAGS):
        if str(tags_a[tag]) != str(tags_b[tag]):
            return _BY_TAG[tag]
    return "reinit"


#: The category of a compressed model (``recipe:prune``, ``recipe:quantize``) with its parent, or with another model
#: of its family (two compressions of one parent): outside the paper's five, which compare models trained apart.
COMPRESSION = "compression"
#: A compressed model with a model outside its family: no methodology category (it would count its parent's pairs
#: twice in them), kept out of the category tables like ``compression``.
COMPRESSED_OTHER = "compressed-other"


def pair_categories(pairs: Iterable[tuple[str, str]], tags: Mapping[str, Mapping[str, Any]], *,
                    roots: Mapping[str, str]) -> list[str]:
    """The category of each pair (a, b) of model ids: :func:`pair_category` of their tags, unless one of them is a
    compressed model (a key of ``roots``, compressed model -> its family's root model:
    :func:`zooscope.config.compression_roots`): then :data:`COMPRESSION` when both belong to one family (the same
    root; a model that is no key is its own root), :data:`COMPRESSED_OTHER` otherwise."""
    out = []
    for a, b in pairs:
        if a in roots or b in roots:
            out.append(COMPRESSION if roots.get(a, a) == roots.get(b, b) else COMPRESSED_OTHER)
        else:
            out.append(pair_category(tags[a], tags[b]))
    return out


class Subset(NamedTuple):
    """A subset of pairs the headline tables cover: its key in ``metrics/study.json`` and how it is named."""

    key: str
    label: str


#: The pair subsets of the headline tables: every pair, the accuracy-matched ones (|acc_a - acc_b| small), and
#: the pairs without a model flagged ``weak``.
SUBSETS = {"all": Subset("categories", "all pairs"), "matched": Subset("categories_matched", "accuracy-matched pairs"),
           "strong": Subset("categories_without_weak", "pairs without weak models")}
#: The statistics each category reports with a bootstrap interval (``<stat>``, ``<stat>_lo``, ``<stat>_hi``).
CATEGORY_STATS = ("kappa", "error_inconsistency", "gain")


#: The synthetic corruptions of the shifted eval sets (zooscope.shift.corruptions implements each), and their severities.
CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "contrast", "brightness", "jpeg",
               "pixelate", "rotate", "shear", "translate")
SEVERITIES = (1, 2, 3, 4, 5)
