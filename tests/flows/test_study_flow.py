"""The Prefect flow against a real Prefect server: every stage a task, DVC left exactly as `dvc repro` leaves it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, TINY_STUDY
from tests.dvcrepo import dvc, make_repo
from tests.prefectserver import prefect_server

pytestmark = pytest.mark.slow

# two models keep the flow runs short; the structure (4 stages each, plus what dvc.yaml adds) is the same
FLOW_STUDY = {**TINY_STUDY, "models": {k: TINY_STUDY["models"][k] for k in ("cnn_a", "randfeat")}}


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    """A real Prefect server (SQLite) on 127.0.0.1 with its own PREFECT_HOME: (API URL, that home)."""
    home = tmp_path_factory.mktemp("prefect-home")
    with prefect_server(home) as api:
        yield api, home


def _post(api: str, path: str, body: dict) -> list[dict]:
    req = urllib.request.Request(api + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))


def run_flow(repo: Path, api: str, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(home), "ZOOSCOPE_PYTHON": sys.executable,
           "PYTHONPATH": f"{repo}{os.pathsep}{REPO}"}
    return subprocess.run([sys.executable, "-m", "flows.study", "run", "--repo", str(repo), *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)


def _lock_stages(repo: Path) -> dict:
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]


def test_flow_runs_every_stage_as_a_task_and_leaves_dvc_as_repro_does(prefect_api, tmp_path):
    api, home = prefect_api
    plain = make_repo(tmp_path / "plain", FLOW_STUDY)
    dvc(plain, "repro")
    flowed = make_repo(tmp_path / "flowed", FLOW_STUDY)
    proc = run_flow(flowed, api, home)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _lock_stages(flowed) == _lock_stages(plain)
    assert "up to date" in dvc(flowed, "status").stdout.lower()

    runs = _post(api, "/flow_runs/filter", {"limit": 20})
    assert {r["flow_id"] for r in runs} and all(r["state_type"] == "COMPLETED" for r in runs)
    tasks = _post(api, "/task_runs/filter", {"limit": 200})
    stage_tasks = {t["name"]: t["state_type"] for t in tasks}
    expected = set(_lock_stages(plain))
    assert expected <= set(stage_tasks)
    assert all(stage_tasks[s] == "COMPLETED" for s in expected)
    keys = {a["key"] for a in _post(api, "/artifacts/filter", {"limit": 50})}
    assert {"per-model-metrics", "study-summary"} <= keys


def test_flow_on_a_dask_local_cluster(prefect_api, tmp_path):
    api, home = prefect_api
    repo = make_repo(tmp_path / "dask", FLOW_STUDY)
    proc = run_flow(repo, api, home, "--runner", "dask", "--workers", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "up to date" in dvc(repo, "status").stdout.lower()
    assert (repo / "metrics/models/randfeat.json").exists()


def test_a_failing_stage_fails_the_flow_and_spares_the_other_models(prefect_api, tmp_path):
    api, home = prefect_api
    study = json.loads(json.dumps(FLOW_STUDY))
    study["models"]["broken"] = {**study["models"]["cnn_a"], "source": "file:/nonexistent/weights.safetensors"}
    repo = make_repo(tmp_path / "failing", study)
    proc = run_flow(repo, api, home)
    assert proc.returncode != 0
    assert "fetch@broken" in proc.stderr
    for mid in ("cnn_a", "randfeat"):
        assert (repo / f"metrics/models/{mid}.json").exists()
    logs = _post(api, "/logs/filter", {"limit": 200, "sort": "TIMESTAMP_DESC"})
    assert any("/nonexistent/weights.safetensors: checkpoint not found" in entry["message"] for entry in logs)
    failed = {t["name"] for t in _post(api, "/task_runs/filter", {"limit": 200}) if t["state_type"] == "FAILED"}
    assert {"fetch@broken", "embed@broken", "predict@broken"} <= failed
