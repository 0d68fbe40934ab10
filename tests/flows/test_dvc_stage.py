"""One DVC stage reproduced in-process (what each flow task runs), in a real temporary git + DVC repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from flows.dvc_stage import DvcLockError, StageFailed, _tail, reproduce_stage
from tests.conftest import REPO

HELLO = '''import sys
from pathlib import Path

out, text = sys.argv[1:]
print("hello from", out, flush=True)
print("step 1/2\\rstep 2/2", file=sys.stderr)
if text == "fail":
    sys.exit("hello: checkpoint not found")
Path(out).write_text(text)
'''


@pytest.fixture
def hello_repo(tmp_path, monkeypatch) -> Path:
    """Three stages through the project's ``zooscope/run_stage.sh``: ``a`` and ``b`` write a file, ``bad`` fails."""
    monkeypatch.setenv("ZOOSCOPE_PYTHON", sys.executable)
    (tmp_path / "stages").mkdir()
    (tmp_path / "zooscope").mkdir()
    shutil.copy(REPO / "zooscope" / "run_stage.sh", tmp_path / "zooscope" / "run_stage.sh")
    (tmp_path / "stages" / "__init__.py").write_text("")
    (tmp_path / "stages" / "hello.py").write_text(HELLO)
    stages = {name: {"cmd": f"sh zooscope/run_stage.sh hello {name}.txt {text}", "outs": [f"{name}.txt"]}
              for name, text in (("a", "A"), ("b", "B"), ("bad", "fail"))}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    return tmp_path


def test_a_stale_stage_runs_once_and_its_output_reaches_emit(hello_repo):
    cwd = os.getcwd()
    lines: list[str] = []
    assert reproduce_stage("a", repo=hello_repo, emit=lines.append) is True
    assert (hello_repo / "a.txt").read_text() == "A"
    assert "Running stage 'a':" in lines
    assert "> sh zooscope/run_stage.sh hello a.txt A" in lines
    assert "hello from a.txt" in lines
    assert "step 2/2" in lines and "step 1/2" not in lines  # a redrawn line is logged as last drawn
    assert set(yaml.safe_load((hello_repo / "dvc.lock").read_text())["stages"]) == {"a"}
    assert os.getcwd() == cwd

    again: list[str] = []
    assert reproduce_stage("a", repo=hello_repo, emit=again.append) is False
    assert "hello from a.txt" not in again


def test_stages_from_threads_take_turns_and_both_reach_dvc_lock(hello_repo):
    results: dict[str, bool] = {}
    logs: dict[str, list[str]] = {"a": [], "b": []}

    def run(name: str) -> None:
        results[name] = reproduce_stage(name, repo=hello_repo, emit=logs[name].append)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"a": True, "b": True}
    waited = [name for name, lines in logs.items() if any("waiting for another stage" in line for line in lines)]
    assert len(waited) == 1  # the second one says why its task is not running yet
    assert set(yaml.safe_load((hello_repo / "dvc.lock").read_text())["stages"]) == {"a", "b"}
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "a", "b"], cwd=hello_repo, capture_output=True,
                            text=True, check=True)
    assert "up to date" in status.stdout.lower()


def test_a_failing_stage_raises_with_its_error_message(hello_repo):
    lines: list[str] = []
    with pytest.raises(StageFailed, match="checkpoint not found") as err:
        reproduce_stage("bad", repo=hello_repo, emit=lines.append)
    assert "stage bad failed" in str(err.value)
    assert "hello: checkpoint not found" in lines
    assert not (hello_repo / "dvc.lock").exists() or "bad" not in (hello_repo / "dvc.lock").read_text()


def test_an_output_locked_by_another_dvc_process_is_a_lock_error_the_flow_retries(hello_repo):
    rwlock = hello_repo / ".dvc" / "tmp" / "rwlock"
    rwlock.parent.mkdir(parents=True, exist_ok=True)
    other = {"pid": os.getppid(), "cmd": "dvc repro (another, live process)"}
    rwlock.write_text(json.dumps({"write": {str(hello_repo / "a.txt"): other}}))
    with pytest.raises(DvcLockError, match="is busy"):
        reproduce_stage("a", repo=hello_repo, emit=lambda line: None)
    assert not (hello_repo / "a.txt").exists()


def test_tail_emits_whole_lines_as_they_arrive_and_the_rest_at_the_end(tmp_path):
    log = tmp_path / "stage.log"
    log.write_text("")
    out: list[str] = []
    done = threading.Event()
    reader = threading.Thread(target=_tail, args=(log, out.append, done))
    reader.start()
    with open(log, "a") as f:
        f.write("first\nbar 10%\rbar 50%")
        f.flush()
        time.sleep(0.5)  # the reader has seen the first part: the redrawn bar spans two reads
        f.write("\rbar 100%\r\n\n  \nno newline")
    done.set()
    reader.join(timeout=5)
    assert out == ["first", "bar 100%", "no newline"]
