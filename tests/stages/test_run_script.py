"""stages/run, the launcher of every stage command: the interpreter it picks and the environment it gives."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.conftest import REPO

PROBE = "import os, sys\nprint(os.environ.get('OMP_WAIT_POLICY'), sys.executable)\n"


def _run(tmp_path, **env):
    (tmp_path / "stages").mkdir(exist_ok=True)
    shutil.copy(REPO / "stages" / "run", tmp_path / "stages" / "run")
    (tmp_path / "stages" / "__init__.py").write_text("")
    (tmp_path / "stages" / "envprobe.py").write_text(PROBE)
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(["sh", "stages/run", "envprobe"], cwd=tmp_path, env={**base, **env}, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0], out[1]


def test_openmp_threads_sleep_while_waiting_unless_the_user_says_otherwise(tmp_path):
    assert _run(tmp_path, ZOOSCOPE_PYTHON=sys.executable) == ("PASSIVE", sys.executable)
    assert _run(tmp_path, ZOOSCOPE_PYTHON=sys.executable, OMP_WAIT_POLICY="ACTIVE")[0] == "ACTIVE"
