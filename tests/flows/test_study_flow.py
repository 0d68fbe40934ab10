"""The Prefect flow against a real Prefect server: every stage a task, DVC left exactly as `dvc repro` leaves it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    """The flow study after a plain `dvc repro`, committed before it ran (as the flows' repositories are)."""
    repo = _committed(make_repo(tmp_path_factory.mktemp("plain") / "repo", FLOW_STUDY))
    dvc(repo, "repro")
    return repo


def _committed(repo: Path) -> Path:
    for args in (["add", "-A"], ["commit", "-qm", "study"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return repo


def test_flow_runs_every_stage_as_a_task_and_leaves_dvc_as_repro_does(prefect_api, plain, tmp_path):
    api, home = prefect_api
    flowed = _committed(make_repo(tmp_path / "flowed", FLOW_STUDY))
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


def _unignored(repo: Path) -> set[str]:
    """The files git would commit now (neither committed nor ignored)."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout
    return {line[3:] for line in out.splitlines()}


def _dask_cluster(tmp_path: Path, api: str, home: Path, clones: list[Path]) -> tuple[str, list[subprocess.Popen]]:
    """A Dask scheduler and one single-threaded worker per clone, each started in and for its own clone (as on
    separate machines): (the scheduler's address, the processes)."""
    info = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--dashboard-address", ":0", "--scheduler-file", str(info)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    for clone in clones:
        env = {**os.environ, "ZOOSCOPE_CLONE": str(clone), "ZOOSCOPE_PYTHON": sys.executable,
               "PYTHONPATH": f"{clone}{os.pathsep}{REPO}", "PREFECT_API_URL": api, "PREFECT_HOME": str(home)}
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                       str(info), "--nthreads", "1", "--no-dashboard"], cwd=clone, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from distributed import Client

    deadline = time.monotonic() + 120
    while not info.exists():
        assert time.monotonic() < deadline, "the Dask scheduler did not start"
        time.sleep(0.2)
    address = json.loads(info.read_text())["address"]
    with Client(address, timeout=60) as client:
        client.wait_for_workers(len(clones), timeout=120)
    return address, procs


def test_dask_workers_in_their_own_clones_share_a_dvc_remote(prefect_api, plain, tmp_path):
    """Issue 17: two workers, each in its own clone, reach the state of a single-machine run in the
    coordinator's clone through a local-folder DVC remote; a third clone pulls it and has the same metrics."""
    api, home = prefect_api
    coordinator = make_repo(tmp_path / "coordinator", FLOW_STUDY)
    dvc(coordinator, "remote", "add", "-d", "store", str(tmp_path / "store"))
    _committed(coordinator)
    clones = []
    for name in ("worker_a", "worker_b"):
        subprocess.run(["git", "clone", "-q", str(coordinator), name], cwd=tmp_path, check=True)
        clones.append(tmp_path / name)
    address, procs = _dask_cluster(tmp_path, api, home, clones)
    try:
        proc = run_flow(coordinator, api, home, "--runner", "dask", "--address", address, "--remote", "store")
    finally:
        for p in procs[::-1]:
            p.terminate()
            p.wait(timeout=30)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    assert _lock_stages(coordinator) == _lock_stages(plain)
    assert "up to date" in dvc(coordinator, "status").stdout.lower()
    metrics = sorted(p.relative_to(plain).as_posix() for p in (plain / "metrics").rglob("*.json"))
    assert metrics and all((coordinator / m).read_bytes() == (plain / m).read_bytes() for m in metrics)
    # the work was spread: each clone reproduced stages the other did not (its lock holds what it ran and pulled)
    ran = [set(_lock_stages(c)) - {"inputs"} for c in clones]
    assert ran[0] and ran[1]
    # the coordinator ran only the root stage; its cache holds what it pulled
    assert (coordinator / "reports/index.html").read_bytes() == (plain / "reports/index.html").read_bytes()

    assert _unignored(coordinator) == _unignored(plain)  # git ignores what DVC keeps, as after `dvc repro`
    _committed(coordinator)
    subprocess.run(["git", "clone", "-q", str(coordinator), "third"], cwd=tmp_path, check=True)
    third = tmp_path / "third"
    dvc(third, "pull")
    assert "up to date" in dvc(third, "status").stdout.lower()
    assert json.loads(dvc(third, "metrics", "show", "--json").stdout) == \
        json.loads(dvc(coordinator, "metrics", "show", "--json").stdout)
    assert all((third / m).read_bytes() == (plain / m).read_bytes() for m in metrics)
    for artifact in ("artifacts/predictions/cnn_a/eval.parquet", "artifacts/similarity.parquet"):
        assert (third / artifact).read_bytes() == (plain / artifact).read_bytes()
