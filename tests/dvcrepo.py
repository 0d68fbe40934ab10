"""Real DVC in temporary git repositories: a project copy holding the pipeline and the library, and helpers
that run ``dvc`` and the stage CLIs there with this interpreter."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, write_study


def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZOOSCOPE_PYTHON": sys.executable, "PYTHONPATH": str(cwd)}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "dvc", *args], cwd, check)


def ran_stages(out: str) -> list[str]:
    return re.findall(r"^Running stage '([^']+)'", out, flags=re.M)


def make_repo(path: Path, study: dict) -> Path:
    """A git + DVC repository holding the project's pipeline and library, and ``study`` as params.yaml."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("zooscope", "stages"):
        shutil.copytree(REPO / name, path / name, ignore=ignore)
    shutil.copy(REPO / "dvc.yaml", path / "dvc.yaml")
    write_study(path / "params.yaml", study)
    _run(["git", "init", "-q"], path)
    _run(["git", "config", "user.email", "t@localhost"], path)
    _run(["git", "config", "user.name", "t"], path)
    dvc(path, "init", "-q")
    dvc(path, "config", "core.analytics", "false")
    shutil.copy(REPO / ".dvcignore", path / ".dvcignore")
    shutil.copytree(REPO / ".dvc" / "plots", path / ".dvc" / "plots")  # custom plot templates, the offline page
    dvc(path, "config", "plots.html_template", "plots/page.html")
    return path
