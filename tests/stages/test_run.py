"""zooscope/run_stage.sh, the one way every stage command starts: the environment it gives the stage."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import REPO

#: The variables zooscope/run_stage.sh sets unless the caller has (idle BLAS and OpenMP threads sleep at once).
SLEEPERS = ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")


def _stage_env(tmp_path, **env) -> list[str]:
    """What a stage started through zooscope/run_stage.sh sees as each of :data:`SLEEPERS` (the interpreter replaced
    by a script that prints them)."""
    shim = tmp_path / "python"
    shim.write_text('#!/bin/sh\nprintf "%s %s" "${OPENBLAS_THREAD_TIMEOUT-unset}" "${OMP_WAIT_POLICY-unset}"\n')
    shim.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k not in (*SLEEPERS, "ZOOSCOPE_STAGE_LOG")}
    run = subprocess.run(["sh", "zooscope/run_stage.sh", "similarity"], cwd=REPO, capture_output=True, text=True,
                         check=True, env={**base, "ZOOSCOPE_PYTHON": str(shim), **env})
    return run.stdout.split()


def test_idle_threads_sleep_unless_the_caller_says_otherwise(tmp_path):
    assert _stage_env(tmp_path) == ["4", "PASSIVE"]
    assert _stage_env(tmp_path, OPENBLAS_THREAD_TIMEOUT="28", OMP_WAIT_POLICY="ACTIVE") == ["28", "ACTIVE"]
