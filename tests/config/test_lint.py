"""zooscope.config.lint on hand-worked zoos: which warnings, naming which models."""

from __future__ import annotations

import copy

from tests.conftest import REPO, TINY_STUDY
from zooscope.config import lint_zoo, load_study, parse_study


def _kinds(study) -> dict[str, list]:
    out: dict[str, list] = {}
    for w in lint_zoo(study):
        out.setdefault(w.kind, []).append(w)
    return out


def test_tiny_zoo_warnings_worked_by_hand():
    # cnn_a (base, seed 0), cnn_b (seed 1), mlp (seed 0, other architecture), randfeat (seed 0, other framework, weak):
    # architecture pairs cnn_a+mlp (shared 0), cnn_b+mlp; framework pairs cnn_a+randfeat (shared 0),
    # cnn_b+randfeat, mlp+randfeat (shared 0); reinit: cnn_a+cnn_b only
    got = _kinds(parse_study(copy.deepcopy(TINY_STUDY)))
    shared = {w.message.split(" pairs share")[0]: w.models for w in got["shared-seed"]}
    assert shared == {"1 of 2 architecture": ("cnn_a", "mlp"), "2 of 3 framework": ("cnn_a", "mlp", "randfeat")}
    assert "cnn_a+randfeat, mlp+randfeat" in got["shared-seed"][1].message
    thin = {w.message.split(" has")[0]: w.models for w in got["thin-category"]}
    assert thin == {"category reinit": ("cnn_b",), "category architecture": ("cnn_b", "mlp")}
    assert [w.models for w in got["weak-in-mean"]] == [("randfeat",)]
    assert "framework means through 3 pairs" in got["weak-in-mean"][0].message
    assert "tag-spelling" not in got


def test_tags_that_differ_only_in_spelling_are_named():
    study = copy.deepcopy(TINY_STUDY)
    study["models"]["cnn_b"]["tags"]["architecture"] = "CNN_w4"  # cnn_a has cnn-w4
    (warning,) = _kinds(parse_study(study))["tag-spelling"]
    assert "'CNN_w4' (cnn_b) and 'cnn-w4' (cnn_a, randfeat)" in warning.message and "architecture pairs" in warning.message


def test_unknown_seeds_are_not_shared():
    study = copy.deepcopy(TINY_STUDY)
    study["models"]["mlp"] = {"source": "timm:resnet18.a1_in1k",
                              "tags": {**TINY_STUDY["models"]["cnn_a"]["tags"], "seed": "unknown", "architecture": "r18"}}
    study["models"]["cnn_a"]["tags"]["seed"] = 0
    study["models"]["randfeat"]["tags"]["seed"] = 5
    assert "shared-seed" not in _kinds(parse_study(study))


def test_the_default_zoo_is_trained_independently():
    got = _kinds(load_study(REPO / "params.yaml"))
    assert "shared-seed" not in got and "thin-category" not in got
    assert [w.models for w in got["weak-in-mean"]] == [("random_features",)]


def test_a_duplicate_model_and_spellings_that_only_look_alike():
    study = copy.deepcopy(TINY_STUDY)
    study["models"]["cnn_b"]["tags"]["seed"] = 0  # the same tags as cnn_a, seed included
    study["models"]["mlp"]["tags"]["hyperparameters"] = "lr=1.5"
    study["models"]["randfeat"]["tags"]["hyperparameters"] = "lr=15"  # a different number, not a spelling
    got = _kinds(parse_study(study))
    assert [w.models for w in got["duplicate"]] == [("cnn_a", "cnn_b")] and "tag-spelling" not in got
