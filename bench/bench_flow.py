"""Overhead of the Prefect flow over a plain `dvc repro`, on the tiny digits study.

Both run from scratch in fresh temporary git + DVC repositories (same study, same machine, same run);
the flow talks to a real local Prefect server it starts on a free port. Prints both times and the ratio.

    python bench/bench_flow.py [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import REPO, TINY_STUDY  # noqa: E402
from tests.test_flow import _free_port  # noqa: E402
from tests.test_pipeline import dvc, make_repo  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=1, help="stages at once in the flow (1 = like dvc repro)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-flow-"))
    home, port = tmp / "prefect", _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "ZOOSCOPE_PYTHON": sys.executable}
    server = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{api}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        plain = make_repo(tmp / "plain", TINY_STUDY)
        t0 = time.perf_counter()
        dvc(plain, "repro")
        t_dvc = time.perf_counter() - t0
        flowed = make_repo(tmp / "flowed", TINY_STUDY)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "flows.study", "run", "--repo", str(flowed), "--workers", str(args.workers)],
                       cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, check=True, capture_output=True)
        t_flow = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait()
    stages = len(yaml.safe_load((plain / "dvc.lock").read_text())["stages"])
    print(f"tiny digits study, {stages} stages, flow with {args.workers} worker(s)")
    print(f"{'run':<12} {'seconds':>8}")
    print(f"{'dvc repro':<12} {t_dvc:8.1f}")
    print(f"{'flow':<12} {t_flow:8.1f}")
    print(f"ratio flow / dvc repro: {t_flow / t_dvc:.2f}  (overhead {t_flow - t_dvc:+.1f} s, "
          f"{(t_flow - t_dvc) / stages:+.2f} s per stage)")


if __name__ == "__main__":
    main()
