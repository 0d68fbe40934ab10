"""A stage run in a worker's own clone, its data moved through a real DVC remote (a local folder), its result
taken back by the coordinator's clone (flows/remote.py), on a three-stage pipeline in real git + DVC repositories."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows.dvc_stage import StageFailed, reproduce_stage
from flows.remote import CLONE_ENV, adopt, handoff, publish_stage, run_in_clone, worker_clone
from tests.conftest import REPO

# root -> words (cached) + count (a metric DVC does not cache) -> summary (cached, reads both)
CAT = '''import json, sys
from pathlib import Path

kind, *args = sys.argv[1:]
if kind == "root":
    Path(args[0]).write_text(Path("params.txt").read_text().upper())
elif kind == "words":
    words = Path(args[0]).read_text().split()
    Path(args[1]).write_text("\\n".join(words))
    Path(args[2]).write_text(json.dumps({"words": len(words)}))
    seen = Path("seen.txt")  # a kept output (persist), like a pair cache: each run adds to what earlier ones left
    seen.write_text((seen.read_text() if seen.exists() else "") + words[0] + "\\n")
else:
    n = json.loads(Path(args[1]).read_text())["words"]
    Path(args[2]).write_text(f"{n} words, the first {Path(args[0]).read_text().splitlines()[0]}")
'''
PIPELINE = {"stages": {
    "root": {"cmd": "sh zooscope/run_stage.sh cat root root.txt", "deps": ["params.txt"], "outs": ["root.txt"]},
    "words": {"cmd": "sh zooscope/run_stage.sh cat words root.txt words.txt count.json",
              "deps": ["root.txt", "stages/cat.py"], "outs": ["words.txt", {"seen.txt": {"persist": True}}],
              "metrics": [{"count.json": {"cache": False}}]},
    "summary": {"cmd": "sh zooscope/run_stage.sh cat summary words.txt count.json summary.txt",
                "deps": ["words.txt", "count.json"], "outs": ["summary.txt"]},
}}
UPSTREAM = {"root": [], "words": ["root"], "summary": ["words"]}


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _dvc(cwd: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _lock(repo: Path) -> dict:
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A committed git + DVC repository of the pipeline above, whose default remote is a local folder."""
    monkeypatch.setenv("ZOOSCOPE_PYTHON", sys.executable)
    repo = tmp_path / "coordinator"
    (repo / "stages").mkdir(parents=True)
    (repo / "zooscope").mkdir()
    shutil.copy(REPO / "zooscope" / "run_stage.sh", repo / "zooscope" / "run_stage.sh")
    (repo / "stages" / "__init__.py").write_text("")
    (repo / "stages" / "cat.py").write_text(CAT)
    (repo / "params.txt").write_text("one two three")
    (repo / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE))
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@localhost")
    _git(repo, "config", "user.name", "t")
    _dvc(repo, "init", "-q")
    _dvc(repo, "remote", "add", "-d", "store", str(tmp_path / "store"))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pipeline")
    return repo


def _clone(project: Path, name: str) -> Path:
    clone = project.parent / name
    _git(project.parent, "clone", "-q", str(project), name)
    return clone


def _coordinate(project: Path, clones: dict[str, Path]) -> list[str]:
    """What the flow does, stage by stage, with ``clones`` naming the worker clone of each non-root stage."""
    log: list[str] = []
    assert reproduce_stage("root", repo=project, emit=log.append)
    assert publish_stage(project, "root", remote=None, emit=log.append) is False  # up to date: pushed
    for stage in ("words", "summary"):
        assert publish_stage(project, stage, remote=None, emit=log.append) is True  # stale
        work = handoff(project, stage, upstream=UPSTREAM[stage], roots={"root"}, emit=log.append)
        result = run_in_clone(stage, work, clone=clones[stage], remote=None, emit=log.append)
        assert result["ran"]
        adopt(project, stage, result, remote=None, emit=log.append)
    return log


def test_stages_run_in_two_clones_leave_the_coordinator_as_a_plain_repro_does(project, tmp_path):
    plain = _clone(project, "plain")
    _dvc(plain, "repro")
    one, two = _clone(project, "one"), _clone(project, "two")
    _coordinate(project, {"words": one, "summary": two})

    assert _lock(project) == _lock(plain)
    assert "up to date" in _dvc(project, "status").lower()
    for name in ("root.txt", "words.txt", "count.json", "summary.txt"):
        assert (project / name).read_bytes() == (plain / name).read_bytes()
    assert (project / "summary.txt").read_text() == "3 words, the first ONE"
    # each stage ran where it was sent; the second clone pulled the first one's outputs (summary reads nothing
    # of root's, so root is not handed to it), and did not recompute them
    assert set(_lock(one)) == {"root", "words"} and set(_lock(two)) == {"words", "summary"}
    assert not (two / "root.txt").exists()
    assert (two / "count.json").read_text() == '{"words": 3}'

    # a third clone with the coordinator's lock and metrics committed pulls everything from the remote
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "study")
    tracked = subprocess.run(["git", "ls-files"], cwd=project, capture_output=True, text=True).stdout.split()
    assert "count.json" in tracked and not {"root.txt", "words.txt", "summary.txt"} & set(tracked)
    third = _clone(project, "third")
    _dvc(third, "pull")
    assert "up to date" in _dvc(third, "status").lower()
    assert (third / "summary.txt").read_text() == "3 words, the first ONE"


def test_a_stage_run_in_another_clone_starts_from_its_kept_output(project):
    one, two = _clone(project, "one"), _clone(project, "two")
    _coordinate(project, {"words": one, "summary": one})
    assert (project / "seen.txt").read_text() == "ONE\n"
    for repo in (project, one, two):  # the study changes, in every clone
        (repo / "params.txt").write_text("zero one two three")
    _coordinate(project, {"words": two, "summary": two})
    assert (two / "seen.txt").read_text() == "ONE\nZERO\n"  # the first run's, pulled from the other clone's push
    assert (project / "seen.txt").read_text() == "ONE\nZERO\n"
    assert (project / "summary.txt").read_text() == "4 words, the first ZERO"


def test_a_clone_with_other_params_is_refused_before_it_runs_anything(project):
    assert reproduce_stage("root", repo=project, emit=lambda line: None)
    publish_stage(project, "root", remote=None, emit=lambda line: None)
    other = _clone(project, "other")
    (other / "params.txt").write_text("four five")
    work = handoff(project, "words", upstream=["root"], roots={"root"}, emit=lambda line: None)
    with pytest.raises(StageFailed, match=r"resolves stage root differently from the coordinator "
                                          r"\(params\.txt, root\.txt\)"):
        run_in_clone("words", work, clone=other, remote=None, emit=lambda line: None)
    assert not (other / "words.txt").exists()


def test_a_result_from_a_clone_with_other_code_is_not_adopted(project):
    assert reproduce_stage("root", repo=project, emit=lambda line: None)
    publish_stage(project, "root", remote=None, emit=lambda line: None)
    other = _clone(project, "other")
    (other / "stages" / "cat.py").write_text(CAT + "\n# edited\n")
    work = handoff(project, "words", upstream=["root"], roots={"root"}, emit=lambda line: None)
    result = run_in_clone("words", work, clone=other, remote=None, emit=lambda line: None)
    with pytest.raises(StageFailed, match=r"stage words ran on .*other, whose clone differs from this one.*stages/cat.py"):
        adopt(project, "words", result, remote=None, emit=lambda line: None)


def test_a_worker_names_what_is_missing_about_its_clone(tmp_path, monkeypatch):
    monkeypatch.delenv(CLONE_ENV, raising=False)
    with pytest.raises(StageFailed, match=f"{CLONE_ENV} is not set"):
        worker_clone()
    monkeypatch.setenv(CLONE_ENV, str(tmp_path))
    with pytest.raises(StageFailed, match="is not a clone of the study"):
        worker_clone()
