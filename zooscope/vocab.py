"""The study's vocabulary, in one place: methodology tags and the categories of a pair (Gontijo-Lopes et al.
2022), the two pair subsets of the headline tables, and the statistics those tables report.

A pair's category is the most divergent methodology tag on which the two model cards differ, in the
order reinit < hyperparameters < architecture < framework < dataset. Two cards that differ in no tag
(two checkpoints of one recipe whose seeds are unknown) are a ``reinit`` pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["METHODOLOGY_TAGS", "CATEGORIES", "GROUPS", "group_rank", "pair_category", "Subset", "SUBSETS",
           "CATEGORY_STATS", "CORRUPTIONS", "SEVERITIES"]

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
