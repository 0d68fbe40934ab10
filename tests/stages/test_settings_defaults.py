"""A study that says only its dataset, base and zoo, under a real `dvc repro`: the inputs stage resolves it into
artifacts/settings.json (every default filled in), the stages take their params from that file, and a section added
later re-runs exactly the stages that use it and those whose inputs it changes."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TINY_STUDY
from tests.dvcrepo import _run, dvc, make_repo, ran_stages

pytestmark = pytest.mark.slow

SETTINGS = "artifacts/settings.json"
#: The probe section's defaults (zooscope/config/settings.py ProbeSettings), as DVC records them.
PROBE_DEFAULTS = {"l2_grid": [0.0001, 0.001, 0.01, 0.1], "max_iter": 100, "tol": 1e-05, "knn_k": 20}


def locked_params(repo, stage: str, section: str):
    """The values dvc.lock records for a stage's section (read as DVC writes it: YAML 1.2, where 1e-05 is a number)."""
    from ruamel.yaml import YAML

    return YAML(typ="safe").load((repo / "dvc.lock").read_text())["stages"][stage]["params"][SETTINGS][section]


def stale(repo) -> set[str]:
    """The stages `dvc status` names."""
    return set(json.loads(dvc(repo, "status", "--json").stdout))


def test_a_study_without_settings_runs_and_an_added_probe_section_re_runs_what_uses_it(tmp_path):
    study = {"dataset": TINY_STUDY["dataset"], "base": "cnn_a",
             "models": {mid: TINY_STUDY["models"][mid] for mid in ("cnn_a", "mlp")}}
    repo = make_repo(tmp_path / "repo", study)
    per_model = ("fetch", "embed", "probe", "predict", "shifted")
    assert set(ran_stages(dvc(repo, "repro").stdout)) == {
        "inputs", *(f"{s}@{m}" for s in per_model for m in ("cnn_a", "mlp")), "similarity", "ensemble", "mistakes",
        "shift", "compression", "report"}
    resolved = json.loads((repo / SETTINGS).read_text())
    assert resolved["probe"] == PROBE_DEFAULTS and resolved["threads"] == 1
    assert locked_params(repo, "probe@mlp", "probe") == PROBE_DEFAULTS  # the values used, defaults included
    assert stale(repo) == set()
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", "study"], repo)

    with (repo / "params.yaml").open("a") as f:
        f.write("probe:\n  knn_k: 3\n")
    assert stale(repo) == {"inputs"}  # it reads params.yaml as a whole; the others read what it resolves
    dvc(repo, "repro", "inputs")
    assert stale(repo) == {"probe@cnn_a", "probe@mlp", "similarity", "report"}  # params holding `probe` (report: all)
    diff = json.loads(dvc(repo, "params", "diff", "--json", "--targets", SETTINGS).stdout)
    assert diff == {SETTINGS: {"probe.knn_k": {"old": 20, "new": 3, "diff": -17}}}  # against the commit: the value used
    # then what reads their outputs: predict (probe.json's k-NN accuracy goes to metrics/models/<id>.json), mistakes
    # (the probe folders), report (metrics/models), shifted (the probe folders, and metrics/models for the
    # temperature: the same, so its outputs and shift's stay); not ensemble (predictions and similarity.parquet stay)
    assert sorted(ran_stages(dvc(repo, "repro").stdout)) == [
        "mistakes", "predict@cnn_a", "predict@mlp", "probe@cnn_a", "probe@mlp", "report", "shifted@cnn_a",
        "shifted@mlp", "similarity"]
    assert locked_params(repo, "probe@mlp", "probe") == {**PROBE_DEFAULTS, "knn_k": 3}
    assert locked_params(repo, "embed@mlp", "embed") == {"batch_size": 256, "device": "auto", "num_workers": 0,
                                                         "precision": "auto"}
