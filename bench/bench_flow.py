"""Overhead of the Prefect flow over a plain `dvc repro`, on the tiny digits study.

Each run starts from scratch in a fresh temporary git + DVC repository (same study, same machine, same
run); the flow talks to a real local Prefect server the benchmark starts on a free port. Prints the times
and the ratio of the medians. Runs go in the order repro, flow, flow, repro, so that drift in the
machine's speed (about +-10 s on a 90 s run here, more than the flow's overhead) hits both alike.

    python bench/bench_flow.py [--workers 1] [--rounds 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import REPO, TINY_STUDY  # noqa: E402
from tests.dvcrepo import dvc, make_repo  # noqa: E402
from tests.prefectserver import prefect_server  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=1, help="stages at once in the flow (1 = like dvc repro)")
    p.add_argument("--rounds", type=int, default=1, help="rounds of dvc repro, flow, flow, dvc repro (default: 1)")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-flow-"))
    env = {**os.environ, "ZOOSCOPE_PYTHON": sys.executable}
    with prefect_server(tmp / "prefect", env=env) as api:
        times: dict[str, list[float]] = {"dvc repro": [], "flow": []}
        order = ["dvc repro", "flow", "flow", "dvc repro"] * args.rounds  # ABBA: drift hits both alike
        for i, kind in enumerate(order):
            repo = make_repo(tmp / f"run{i}", TINY_STUDY)
            t0 = time.perf_counter()
            if kind == "dvc repro":
                dvc(repo, "repro")
            else:
                subprocess.run([sys.executable, "-m", "flows.study", "run", "--repo", str(repo), "--workers",
                                str(args.workers)], cwd=REPO,
                               env={**env, "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp / "prefect"),
                                    "PYTHONPATH": str(REPO)}, check=True,
                               capture_output=True)
            times[kind].append(time.perf_counter() - t0)
    stages = len(yaml.safe_load((repo / "dvc.lock").read_text())["stages"])
    t_dvc, t_flow = (statistics.median(times[k]) for k in ("dvc repro", "flow"))
    print(f"tiny digits study, {stages} stages, flow with {args.workers} worker(s), {len(times['flow'])} run(s) each")
    print(f"{'run':<12} {'median s':>9}  runs")
    for kind, ts in times.items():
        print(f"{kind:<12} {statistics.median(ts):9.1f}  {', '.join(f'{t:.1f}' for t in ts)}")
    print(f"ratio flow / dvc repro: {t_flow / t_dvc:.2f}  (overhead {t_flow - t_dvc:+.1f} s, "
          f"{(t_flow - t_dvc) / stages:+.2f} s per stage)")


if __name__ == "__main__":
    main()
