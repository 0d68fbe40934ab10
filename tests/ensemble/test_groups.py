"""Subgroups: per-group accuracy, worst groups, student vs teacher and the groups ensembles hurt, against counts made
by hand from the predictions."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from zooscope.ensemble.bootstrap import bootstrap_weights
from zooscope.ensemble.groups import (GROUPS_COLUMNS, group_accuracy, groups_hurt_by_ensembles, student_vs_teacher,
                                      subgroup_tables, worst_groups)

# 8 images of 3 classes; groups: "ab" = classes 0 and 1, "c" = class 2
LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2])
PRED = {"base": [0, 0, 1, 1, 1, 2, 2, 0],      # class 0: 2/3, class 1: 2/2, class 2: 2/3; ab 4/5, c 2/3
        "teacher": [0, 1, 1, 1, 0, 2, 2, 2],   # class 0: 1/3, class 1: 1/2, class 2: 3/3; ab 2/5, c 3/3
        "student": [0, 1, 2, 1, 1, 2, 2, 2]}   # class 0: 1/3, class 1: 2/2, class 2: 3/3; ab 3/5, c 3/3
GROUPS = {"ab": [0, 1], "c": [2]}
MODELS = list(PRED)


def _correct() -> np.ndarray:
    return np.array([np.array(PRED[m]) == LABELS for m in MODELS])


def _by_hand(model: str, classes: list[int]) -> float:
    pairs = [(p, y) for p, y in zip(PRED[model], LABELS) if y in classes]
    return sum(p == y for p, y in pairs) / len(pairs)


def test_group_accuracy_equals_direct_counts():
    acc = group_accuracy(_correct(), LABELS, models=MODELS, groups=GROUPS, num_classes=3, n_boot=200, seed=1)
    assert acc.names == ("ab", "c", "class 0", "class 1", "class 2")
    assert acc.kinds == ("group", "group", "class", "class", "class")
    np.testing.assert_array_equal(acc.support, [5, 3, 3, 2, 3])
    for m, model in enumerate(MODELS):
        expected = [_by_hand(model, [0, 1]), _by_hand(model, [2]), *(_by_hand(model, [c]) for c in range(3))]
        np.testing.assert_allclose(acc.accuracy[m], expected)
    np.testing.assert_allclose(acc.overall, [6 / 8, 5 / 8, 6 / 8])


def test_bootstrap_draws_are_the_resampled_counts():
    acc = group_accuracy(_correct(), LABELS, models=MODELS, groups=GROUPS, num_classes=3, n_boot=50, seed=3)
    weights = bootstrap_weights(len(LABELS), n_boot=50, seed=3)
    r = 7  # one resample, counted image by image
    drawn = np.repeat(np.arange(len(LABELS)), weights[r])
    for m, model in enumerate(MODELS):
        in_ab = [i for i in drawn if LABELS[i] in (0, 1)]
        right = sum(PRED[model][i] == LABELS[i] for i in in_ab)
        assert acc.draws[m, 0, r] == pytest.approx(right / len(in_ab))


def test_worst_group_and_its_gap_to_the_base():
    acc = group_accuracy(_correct(), LABELS, models=MODELS, groups=GROUPS, num_classes=3, n_boot=200)
    worst = worst_groups(acc, base="base")
    # base: groups ab 0.8, c 0.667 -> worst c; classes 0.667, 1.0, 0.667 -> worst class 0 (the first of two)
    assert worst["base"]["group"]["worst"] == "c" and worst["base"]["group"]["accuracy"] == pytest.approx(2 / 3)
    assert worst["base"]["class"]["worst"] == "class 0"
    # teacher: ab 0.4 (worst), c 1.0; gap to the base's worst group (c, 2/3): 0.4 - 0.667
    t = worst["teacher"]["group"]
    assert t["worst"] == "ab" and t["accuracy"] == pytest.approx(0.4)
    assert t["gap_to_base"] == pytest.approx(0.4 - 2 / 3) and t["base_accuracy"] == pytest.approx(2 / 3)
    assert worst["teacher"]["class"]["worst"] == "class 0" and worst["teacher"]["class"]["accuracy"] == pytest.approx(1 / 3)
    assert worst["base"]["group"]["gap_to_base"] == 0 and worst["base"]["group"]["gap_lo"] == 0
    assert t["gap_lo"] <= t["gap_to_base"] <= t["gap_hi"]


def test_student_vs_teacher_flags_groups_harmed_when_better_overall():
    correct = np.array([[1, 1, 0, 1, 1, 1, 1, 0],    # base
                        [1, 0, 0, 1, 1, 1, 1, 1],    # teacher: 6/8; class 0 1/3, class 1 2/2, class 2 3/3
                        [1, 1, 1, 1, 1, 1, 0, 1]],   # student: 7/8; class 0 3/3, class 1 2/2, class 2 2/3
                       bool)
    acc = group_accuracy(correct, LABELS, models=MODELS, groups=GROUPS, num_classes=3, n_boot=100)
    versus = student_vs_teacher(acc, {"student": "teacher"})
    got = dict(versus.select("group", "vs_teacher").rows())
    assert got == pytest.approx({"ab": 5 / 5 - 3 / 5, "c": 2 / 3 - 1, "class 0": 1 - 1 / 3, "class 1": 0.0,
                                 "class 2": 2 / 3 - 1})
    assert versus["overall_vs_teacher"].unique().to_list() == pytest.approx([1 / 8])
    # better overall, worse on class 2 (and so on its group c); equal on class 1 is no harm
    assert sorted(versus.filter("harmed")["group"]) == ["c", "class 2"]
    # the other way round: the teacher is worse overall than its "student", so nothing counts as harmed
    assert not student_vs_teacher(acc, {"teacher": "student"})["harmed"].any()
    assert (versus["vs_teacher_lo"] <= versus["vs_teacher"] + 1e-12).all()


def test_groups_hurt_by_ensembles_picks_the_negative_rows():
    per_group = pl.DataFrame({"model_a": ["a", "a", "b"], "model_b": ["b", "b", "c"], "group": ["x", "y", "x"],
                              "support": [5, 5, 5], "acc_a": [0.8, 0.6, 0.5], "acc_b": [0.7, 0.9, 0.4],
                              "acc_ens": [0.7, 0.9, 0.5], "winner": ["model_a", "model_b", "model_a"],
                              "ens_vs_better": [-0.1, 0.3, 0.0]})
    hurt = groups_hurt_by_ensembles(per_group)
    assert hurt.select("model_a", "model_b", "group").rows() == [("a", "b", "x")]


def test_subgroup_tables_columns_and_metrics():
    per_group = pl.DataFrame({"model_a": ["base"], "model_b": ["teacher"], "group": ["ab"], "support": [5],
                              "acc_a": [0.8], "acc_b": [0.4], "acc_ens": [0.6], "winner": ["model_a"],
                              "ens_vs_better": [-0.2]})
    table, metrics, plot = subgroup_tables(_correct(), LABELS, models=MODELS, base="base", groups=GROUPS, num_classes=3,
                                           teachers={"student": "teacher"}, per_group=per_group, n_boot=100)
    assert table.columns == list(GROUPS_COLUMNS) and len(table) == 3 * 5
    gaps = dict(table.filter(pl.col("model") == "teacher").select("group", "gap_to_base").rows())
    assert gaps["ab"] == pytest.approx(2 / 5 - 4 / 5) and gaps["class 2"] == pytest.approx(1 - 2 / 3)
    assert table.filter(pl.col("model") != "student")["teacher"].null_count() == 2 * 5
    assert metrics["distillation"]["student"]["teacher"] == "teacher"
    assert metrics["ensembles_hurt_groups"]["rows"] == 1 and metrics["ensembles_hurt_groups"]["pairs"] == 1
    assert plot.columns == ["model", "group", "value", "statistic"] and len(plot) == len(table)


@pytest.mark.parametrize("groups, message", [({"x": [3]}, "class_groups.x"), ({"x": []}, "class_groups.x")])
def test_bad_groups_are_refused(groups, message):
    with pytest.raises(ValueError, match=message):
        group_accuracy(_correct(), LABELS, models=MODELS, groups=groups, num_classes=3, n_boot=10)


def test_a_class_without_eval_images_is_never_the_worst_and_the_metrics_are_valid_json():
    import json

    # 4 classes declared, class 3 has no eval image
    table, metrics, _ = subgroup_tables(_correct(), LABELS, models=MODELS, base="base", groups=GROUPS, num_classes=4,
                                        teachers={"student": "teacher"}, per_group=pl.DataFrame(), n_boot=50)
    assert table.filter(pl.col("group") == "class 3")["support"].to_list() == [0, 0, 0]
    assert table.filter(pl.col("group") == "class 3")["accuracy"].is_nan().all()
    assert metrics["worst_group"]["teacher"]["class"]["worst"] == "class 0"
    json.dumps(metrics, allow_nan=False)  # what write_json does
