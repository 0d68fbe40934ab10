"""Subgroups (docs/science.md section 8): how each model does on each group of classes (``ensemble.class_groups``)
and on each single class, its worst group, and the gaps to the base model; for every distilled model, the student
against its teacher per group (where distillation helps overall and harms a group); for every pair ensemble, the
groups where the ensemble is worse than its better member.

Intervals are 95% percentile bootstraps over eval images (:mod:`zooscope.ensemble.bootstrap`, the same seeded
resamples as the pair table's): they speak for these very models on other test images like these, not for other
models trained the same way. A resample counts a group's images and the right answers among them afresh, so a
group's accuracy, its gap to the base and a worst-group accuracy are each recomputed in every resample; a resample
that drew no image of a group is left out of that group's interval. A class without eval images has no accuracy
(nan in the table, null in the metrics) and is never a worst group.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from zooscope.ensemble.bootstrap import bootstrap_weights, resampled_counts

__all__ = ["GROUPS_COLUMNS", "GroupAccuracy", "group_accuracy", "worst_groups", "student_vs_teacher",
           "groups_hurt_by_ensembles", "subgroup_tables"]

#: The columns of ``artifacts/groups.parquet``, one row per (model, group): ``kind`` is ``group`` (a group of
#: ``ensemble.class_groups``, ``group`` its name) or ``class`` (one class, ``group`` = ``class <index>``).
GROUPS_COLUMNS = ("model", "kind", "group", "class", "support", "accuracy", "acc_lo", "acc_hi", "gap_to_base",
                  "gap_lo", "gap_hi", "teacher", "vs_teacher", "vs_teacher_lo", "vs_teacher_hi",
                  "harmed_by_distillation")


@dataclass(frozen=True)
class GroupAccuracy:
    """Every model's accuracy on every group, with its bootstrap draws.

    Attributes:
        models: model ids (index m); kinds, names: per group (index g), ``group`` or ``class`` and its name;
        classes: per group, its class index (-1 for a declared group).
        support: int [G], eval images per group. accuracy: float [n_models, G] (nan: a group without images).
        overall: float [n_models], accuracy over every image.
        draws: float [n_models, G, n_boot], the accuracy in each resample (nan where a resample drew no image
            of the group).
    """

    models: tuple[str, ...]
    kinds: tuple[str, ...]
    names: tuple[str, ...]
    classes: tuple[int, ...]
    support: np.ndarray
    accuracy: np.ndarray
    overall: np.ndarray
    draws: np.ndarray


def group_accuracy(correct: np.ndarray, labels: np.ndarray, *, models: Sequence[str],
                   groups: Mapping[str, Sequence[int]], num_classes: int, n_boot: int,
                   seed: int = 0) -> GroupAccuracy:
    """Per model, accuracy on each declared group of classes, then on each class.

    Args:
        correct: bool [n_models, n], whether each model is right on each eval image; labels: int [n].
        models: the n_models ids; groups: group name -> class indices; num_classes: C.
        n_boot, seed: the bootstrap resamples over images (:func:`zooscope.ensemble.bootstrap.bootstrap_weights`).

    Raises:
        ValueError: shapes disagree, a label or a group's class is outside 0..C-1, or a group is empty.
    """
    correct, labels = np.asarray(correct, bool), np.asarray(labels, np.int64)
    if correct.ndim != 2 or labels.shape != (correct.shape[1],) or len(models) != len(correct):
        raise ValueError(f"correct [n_models, n], labels [n] and {len(models)} model ids do not fit: "
                         f"{correct.shape} and {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    for name, members in groups.items():
        if not len(members) or min(members) < 0 or max(members) >= num_classes:
            raise ValueError(f"ensemble.class_groups.{name}: needs classes in 0..{num_classes - 1}, "
                             f"got {list(members)}")
    kinds = ("group",) * len(groups) + ("class",) * num_classes
    names = (*groups, *(f"class {c}" for c in range(num_classes)))
    member = np.zeros((len(labels), len(names)), bool)  # [n, G]
    for g, members in enumerate(groups.values()):
        member[:, g] = np.isin(labels, list(members))
    member[np.arange(len(labels)), len(groups) + labels] = True
    support = member.sum(0)
    right = correct.astype(np.int64) @ member  # [n_models, G]
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = right / support
    n_models, n_groups = right.shape
    weights = bootstrap_weights(len(labels), n_boot=n_boot, seed=seed)
    both = (correct[:, :, None] & member[None]).transpose(1, 0, 2).reshape(len(labels), n_models * n_groups)
    boot_right = resampled_counts(weights, np.concatenate([both, member], 1))  # [n_boot, n_models * G + G]
    boot_support = boot_right[:, n_models * n_groups:]
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = boot_right[:, :n_models * n_groups].reshape(n_boot, n_models, n_groups) / boot_support[:, None, :]
    return GroupAccuracy(tuple(models), kinds, names, (-1,) * len(groups) + tuple(range(num_classes)), support,
                         accuracy, correct.mean(1), draws.transpose(1, 2, 0))


def _interval95(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`zooscope.ensemble.bootstrap.interval95` over the resamples that drew an image of the group (a resample
    without one has no accuracy there: nan); nan where none did."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(draws, [2.5, 97.5], axis=-1)
    return lo, hi


def _columns(acc: GroupAccuracy, kind: str) -> np.ndarray:
    return np.array([g for g, k in enumerate(acc.kinds) if k == kind], np.int64)


def _nanmin_arg(values: np.ndarray) -> int:
    return int(np.nanargmin(values)) if np.isfinite(values).any() else -1


def worst_groups(acc: GroupAccuracy, *, base: str) -> dict[str, dict[str, Any]]:
    """Per model, its worst declared group and its worst class: which, the accuracy there, the base's worst-group
    accuracy (over its own worst group, which may be another), and the gap between the two with its interval.

    The gap's draws take each resample's worst group of each model afresh (the minimum of that resample's group
    accuracies), so the interval covers which group is worst as well.

    Returns:
        model -> {"group": {"worst", "accuracy", "base_accuracy", "gap_to_base", "gap_lo", "gap_hi"},
        "class": the same over single classes}; a kind without groups is left out.
    """
    b = acc.models.index(base)
    out: dict[str, dict[str, Any]] = {m: {} for m in acc.models}
    for kind in ("group", "class"):
        cols = _columns(acc, kind)
        if not len(cols):
            continue
        with warnings.catch_warnings():  # a resample without an image of any group: nan, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            draws = np.nanmin(acc.draws[:, cols], axis=1)  # [n_models, n_boot]
        base_worst = np.nanmin(acc.accuracy[b, cols])
        for m, model in enumerate(acc.models):
            g = _nanmin_arg(acc.accuracy[m, cols])
            worst = float(acc.accuracy[m, cols[g]]) if g >= 0 else float("nan")
            lo, hi = _interval95(draws[m] - draws[b])
            out[model][kind] = {"worst": acc.names[cols[g]] if g >= 0 else None, "accuracy": worst,
                                "base_accuracy": float(base_worst), "gap_to_base": worst - float(base_worst),
                                "gap_lo": float(lo), "gap_hi": float(hi)}
    return out


def student_vs_teacher(acc: GroupAccuracy, teachers: Mapping[str, str]) -> pl.DataFrame:
    """Per distilled model and group: student minus teacher accuracy with its interval, the overall difference,
    and ``harmed``: the student is better overall but worse on the group.

    Args:
        acc: :func:`group_accuracy` of a zoo holding every student and teacher; teachers: student id -> teacher id
            (:func:`zooscope.config.teacher_of`).

    Returns:
        one row per (student, group): student, teacher, kind, group, class, student_acc, teacher_acc, vs_teacher,
        vs_teacher_lo, vs_teacher_hi, overall_vs_teacher, harmed.
    """
    schema = {"student": pl.String, "teacher": pl.String, "kind": pl.String, "group": pl.String, "class": pl.Int64,
              "student_acc": pl.Float64, "teacher_acc": pl.Float64, "vs_teacher": pl.Float64,
              "vs_teacher_lo": pl.Float64, "vs_teacher_hi": pl.Float64, "overall_vs_teacher": pl.Float64,
              "harmed": pl.Boolean}
    rows = []
    for student, teacher in teachers.items():
        s, t = acc.models.index(student), acc.models.index(teacher)
        lo, hi = _interval95(acc.draws[s] - acc.draws[t])  # [G] each
        overall = float(acc.overall[s] - acc.overall[t])
        for g in range(len(acc.names)):
            diff = float(acc.accuracy[s, g] - acc.accuracy[t, g])
            rows.append({"student": student, "teacher": teacher, "kind": acc.kinds[g], "group": acc.names[g],
                         "class": acc.classes[g] if acc.classes[g] >= 0 else None,
                         "student_acc": float(acc.accuracy[s, g]), "teacher_acc": float(acc.accuracy[t, g]),
                         "vs_teacher": diff, "vs_teacher_lo": float(lo[g]), "vs_teacher_hi": float(hi[g]),
                         "overall_vs_teacher": overall, "harmed": bool(overall > 0 and diff < 0)})
    return pl.DataFrame(rows, schema=schema)


def groups_hurt_by_ensembles(per_group: pl.DataFrame) -> pl.DataFrame:
    """The (pair, declared group) rows where the pair's ensemble is below its better member (``ens_vs_better`` < 0,
    the better member being the one more accurate overall), worst first.

    Args:
        per_group: ``artifacts/pairs_per_group.parquet`` (:func:`zooscope.ensemble.pairs.group_table`).
    """
    return (per_group.filter(pl.col("ens_vs_better") < 0)
            .select("model_a", "model_b", "group", "support", "acc_a", "acc_b", "acc_ens", "ens_vs_better")
            .sort("ens_vs_better", "model_a", "model_b", "group"))


def _table(acc: GroupAccuracy, *, base: str, versus: pl.DataFrame) -> pl.DataFrame:
    b = acc.models.index(base)
    gap = acc.accuracy - acc.accuracy[b]
    acc_lo, acc_hi = _interval95(acc.draws)
    gap_lo, gap_hi = _interval95(acc.draws - acc.draws[b])
    n_models, n_groups = acc.accuracy.shape
    frame = pl.DataFrame({
        "model": np.repeat(acc.models, n_groups), "kind": np.tile(acc.kinds, n_models),
        "group": np.tile(acc.names, n_models),
        "class": pl.Series([c if c >= 0 else None for c in acc.classes] * n_models, dtype=pl.Int64),
        "support": np.tile(acc.support, n_models).astype(np.int64), "accuracy": acc.accuracy.ravel(),
        "acc_lo": acc_lo.ravel(), "acc_hi": acc_hi.ravel(), "gap_to_base": gap.ravel(), "gap_lo": gap_lo.ravel(),
        "gap_hi": gap_hi.ravel()})
    students = versus.select(pl.col("student").alias("model"), "group", "teacher", "vs_teacher", "vs_teacher_lo",
                             "vs_teacher_hi", pl.col("harmed").alias("harmed_by_distillation"))
    return frame.join(students, on=["model", "group"], how="left", maintain_order="left").select(GROUPS_COLUMNS)


def _json_safe(value: Any) -> Any:
    """``value`` with every nan (a group without eval images) as None, so it is valid JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return None if isinstance(value, float) and not np.isfinite(value) else value


def subgroup_tables(correct: np.ndarray, labels: np.ndarray, *, models: Sequence[str], base: str,
                    groups: Mapping[str, Sequence[int]], num_classes: int, teachers: Mapping[str, str],
                    per_group: pl.DataFrame, n_boot: int,
                    seed: int = 0) -> tuple[pl.DataFrame, dict[str, Any], pl.DataFrame]:
    """The ensemble stage's subgroup outputs.

    Args:
        correct: bool [n_models, n]; labels: int [n]; models: the ids, ``base`` among them; groups:
            ``ensemble.class_groups``; teachers: student -> teacher; per_group: the pairs' per-group table.

    Returns:
        ``artifacts/groups.parquet`` (:data:`GROUPS_COLUMNS`), ``metrics/study.json``'s ``subgroups`` section, and the
        data of ``plots/subgroup_gap.csv`` (model, group, value: accuracy minus the base's, statistic).
    """
    if base not in models:
        raise ValueError(f"base {base!r} is not among the models")
    for student, teacher in teachers.items():
        if student not in models or teacher not in models:
            raise ValueError(f"student {student!r} or its teacher {teacher!r} is not among the models")
    acc = group_accuracy(correct, labels, models=models, groups=groups, num_classes=num_classes, n_boot=n_boot,
                         seed=seed)
    versus = student_vs_teacher(acc, teachers)
    table = _table(acc, base=base, versus=versus)
    hurt = groups_hurt_by_ensembles(per_group) if len(per_group) else per_group.clear()
    distillation = {}
    for student, teacher in teachers.items():
        rows = versus.filter(pl.col("student") == student)
        harmed = rows.filter("harmed").sort("vs_teacher")
        distillation[student] = {
            "teacher": teacher, "overall_vs_teacher": float(rows["overall_vs_teacher"][0]),
            "harmed": [{"group": r["group"], "vs_teacher": r["vs_teacher"], "lo": r["vs_teacher_lo"],
                        "hi": r["vs_teacher_hi"]} for r in harmed.iter_rows(named=True)],
            "worst": {kind: dict(zip(("group", "vs_teacher"), rows.filter(pl.col("kind") == kind)
                                     .sort("vs_teacher").select("group", "vs_teacher").row(0)))
                      for kind in ("group", "class") if len(rows.filter(pl.col("kind") == kind))}}
    metrics = {
        "population": "95% intervals over eval images: these models on other test images like these",
        "worst_group": worst_groups(acc, base=base), "distillation": distillation,
        "ensembles_hurt_groups": {"pairs": int(hurt.select("model_a", "model_b").n_unique()) if len(hurt) else 0,
                                  "rows": int(len(hurt)), "of": int(len(per_group)),
                                  "worst": hurt.head(10).to_dicts()}}
    metrics = _json_safe(metrics)
    plot = table.select("model", "group", pl.col("gap_to_base").alias("value"),
                        pl.lit("accuracy minus the base's").alias("statistic"))
    return table, metrics, plot
