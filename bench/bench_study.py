"""The default study from scratch, timed: wall time, time per stage family, DVC's own cost per stage, the fixed
cost of a trivial stage, a no-op `dvc repro` and a one-model re-run, for one or more git revisions in one run.

    python bench/bench_study.py                               # the working tree's HEAD
    python bench/bench_study.py --ref 0612551 --ref HEAD      # before and after, one after the other
    python bench/bench_study.py --ref HEAD --skip-change      # without the one-model re-run
    python bench/bench_study.py --ref HEAD --flow 2           # and the Prefect flow, 2 Dask workers, beside it

Each revision is cloned into a fresh temporary folder and studied with this interpreter (its packages:
``$ZOOSCOPE_PYTHON`` points every stage at a small wrapper that logs when the stage's process starts and
ends). A stage's span runs from DVC's "Running stage" line to the next one (its process, hashing its outputs
and rewriting dvc.lock); DVC's own cost per stage is the span less the process. Then, in the studied clone:
the fixed cost (``dvc repro -f -s predict@<base>``: a stage whose work is a temperature fit and a table,
median of 3), a no-op ``dvc repro`` (median of 3), and ``dvc exp run -S <key>=<value>`` (one model's training
changed; default ``models.mlp.train.epochs=3``), with its stages. Revisions run one after the other, so a
machine that gets busier in between biases the later one: repeat with the order reversed to see the drift.
Outputs are compared through dvc.lock: the hash of every output of every stage, against the first revision
(and, with ``--flow``, the flow's against ``dvc repro``'s of the same revision).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_WRAPPER = """#!/bin/sh
s=$(date +%s.%N)
"{python}" "$@"
rc=$?
echo "$DVC_STAGE $s $(date +%s.%N)" >> "{log}"
exit $rc
"""
_RUNNING = re.compile(rb"Running stage '([^']+)'")


def _timed_run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, list[tuple[str, float]], int]:
    """Run ``cmd``; its wall seconds, (stage, seconds since start) of every "Running stage" line, exit status."""
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    buf, tail = b"", b""
    while chunk := proc.stdout.read1(65536):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if m := _RUNNING.search(line):
                marks.append((m.group(1).decode(), time.perf_counter() - start))
        tail = (tail + chunk)[-4000:]
    rc = proc.wait()
    if rc:
        sys.stderr.write(tail.decode(errors="replace"))
    return time.perf_counter() - start, marks, rc


def _times(n: int, cmd: list[str], cwd: Path, env: dict[str, str]) -> list[float]:
    times = []
    for _ in range(n):
        wall, _, rc = _timed_run(cmd, cwd, env)
        if rc:
            raise SystemExit(f"{' '.join(cmd)} failed in {cwd}")
        times.append(wall)
    return times


def _spans(marks: list[tuple[str, float]], wall: float) -> dict[str, float]:
    ends = [t for _, t in marks[1:]] + [wall]
    return {stage: end - t for (stage, t), end in zip(marks, ends)}


def _processes(log: Path) -> dict[str, float]:
    out = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        stage, s, e = line.split()
        out[stage] = float(e) - float(s)
    return out


def _outs(clone: Path) -> dict[str, str]:
    """Every stage output's hash, from dvc.lock: path -> md5."""
    import yaml

    lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    return {o["path"]: o["md5"] for stage in lock.values() for o in stage.get("outs", [])}


def _differ(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))


def _clone(ref: str, dest: Path) -> None:
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    subprocess.run(["git", "checkout", "-q", ref], cwd=dest, check=True)


def _flow(ref: str, work: Path, *, workers: int, env: dict[str, str]) -> dict:
    """Study ``ref`` in a fresh clone through the Prefect flow (Dask, ``workers`` processes) on a local server."""
    sys.path.insert(0, str(REPO))
    from tests.prefectserver import prefect_server

    clone = work / (re.sub(r"[^A-Za-z0-9_.-]", "_", ref) + f"-flow{workers}")
    _clone(ref, clone)
    home = work / f"{clone.name}.prefect"
    print(f"[{ref}] the flow, {workers} Dask workers, in {clone} ...", flush=True)
    with prefect_server(home, env=env) as api:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "flows.study", "run", "--repo", str(clone), "--runner", "dask",
                               "--workers", str(workers)], cwd=clone,
                              env={**env, "PREFECT_API_URL": api, "PREFECT_HOME": str(home)}, capture_output=True,
                              text=True)
        wall = time.perf_counter() - start
    if proc.returncode:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"[{ref}] the flow failed")
    return {"workers": workers, "wall": wall, "outs": _outs(clone)}


def _family(stage: str) -> str:
    return stage.partition("@")[0]


def bench_ref(ref: str, work: Path, *, change: str | None, flow: int | None) -> dict:
    """Clone ``ref`` into ``work``, study it, and time what the module docstring lists."""
    clone = work / re.sub(r"[^A-Za-z0-9_.-]", "_", ref)
    _clone(ref, clone)
    log = work / f"{clone.name}.processes"
    wrapper = work / f"{clone.name}.python"
    wrapper.write_text(_WRAPPER.format(python=sys.executable, log=log))
    wrapper.chmod(0o755)
    env = {**os.environ, "ZOOSCOPE_PYTHON": str(wrapper)}
    env.pop("PYTHONPATH", None)
    dvc = [sys.executable, "-m", "dvc"]
    print(f"[{ref}] dvc repro from scratch in {clone} ...", flush=True)
    wall, marks, rc = _timed_run([*dvc, "repro"], clone, env)
    if rc:
        raise SystemExit(f"[{ref}] dvc repro failed")
    spans, procs = _spans(marks, wall), _processes(log)
    families: dict[str, dict[str, float]] = defaultdict(lambda: {"stages": 0, "span": 0.0, "process": 0.0})
    for stage, span in spans.items():
        f = families[_family(stage)]
        f["stages"] += 1
        f["span"] += span
        f["process"] += procs.get(stage, 0.0)
    base = json.loads((clone / "artifacts" / "settings.json").read_text())["base"]
    print(f"[{ref}] fixed cost and no-op ...", flush=True)
    fixed = _times(3, [*dvc, "repro", "-f", "-s", f"predict@{base}"], clone, env)
    noop = _times(3, [*dvc, "repro"], clone, env)
    result = {"ref": ref, "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, text=True,
                                                   capture_output=True).stdout.strip(),
              "wall": wall, "startup": marks[0][1] if marks else wall, "families": dict(families),
              "dvc_per_stage": statistics.median(s - procs.get(k, 0.0) for k, s in spans.items()),
              "fixed": fixed, "noop": noop, "outs": _outs(clone)}
    if flow:
        result["flow"] = _flow(ref, work, workers=flow, env=env)
    if change:
        print(f"[{ref}] dvc exp run -S {change} ...", flush=True)
        log.unlink()
        cwall, cmarks, rc = _timed_run([*dvc, "exp", "run", "-S", change], clone, env)
        if rc:
            raise SystemExit(f"[{ref}] dvc exp run -S {change} failed")
        result["change"] = {"wall": cwall, "stages": _spans(cmarks, cwall)}
    return result


def _report(results: list[dict], change: str | None) -> str:
    fams = list(dict.fromkeys(f for r in results for f in r["families"]))
    head = "| | " + " | ".join(f"{r['ref']} ({r['commit']})" for r in results) + " |"
    rows = [head, "|---" * (len(results) + 1) + "|"]

    def row(name, cells):
        rows.append(f"| {name} | " + " | ".join(cells) + " |")

    row("`dvc repro` from scratch, wall", [f"**{r['wall']:.0f} s**" for r in results])
    row("DVC start-up before the first stage", [f"{r['startup']:.1f} s" for r in results])
    for f in fams:
        row(f"{f} (stages: span, of which process)",
            [f"{r['families'][f]['stages']}: {r['families'][f]['span']:.0f} s, {r['families'][f]['process']:.0f} s"
             if f in r["families"] else "-" for r in results])
    row("DVC's own cost per stage (median span less process)", [f"{r['dvc_per_stage']:.2f} s" for r in results])
    row("fixed cost: `dvc repro -f -s predict@<base>` (median of 3)",
        [f"{statistics.median(r['fixed']):.2f} s ({', '.join(f'{t:.2f}' for t in r['fixed'])})" for r in results])
    row("no-op `dvc repro` (median of 3)",
        [f"{statistics.median(r['noop']):.2f} s ({', '.join(f'{t:.2f}' for t in r['noop'])})" for r in results])
    if any("flow" in r for r in results):
        row("the Prefect flow from scratch (Dask), wall",
            [f"{r['flow']['wall']:.0f} s with {r['flow']['workers']} workers, {r['flow']['wall'] / r['wall']:.2f} of "
             f"`dvc repro`; outputs differing from its: {len(_differ(r['outs'], r['flow']['outs']))}"
             if "flow" in r else "-" for r in results])
    first = results[0]
    compared = [_differ(first["outs"], r["outs"]) for r in results[1:]]
    row(f"outputs (dvc.lock hashes) differing from {first['ref']}'s",
        ["-"] + [f"{len(d)} of {len(r['outs'])}: {', '.join(d) or 'none'}" for r, d in zip(results[1:], compared)])
    if change:
        row(f"`dvc exp run -S {change}`, wall (stages re-run)",
            [f"{r['change']['wall']:.0f} s ({len(r['change']['stages'])}), {r['change']['wall'] / r['wall']:.2f} of a "
             "full study" for r in results])
        slow = [", ".join(f"{s} {t:.0f} s" for s, t in sorted(r["change"]["stages"].items(), key=lambda kv: -kv[1])[:4])
                for r in results]
        row("its slowest stages", slow)
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", action="append", help="git revision to study (repeat for several; default: HEAD)")
    p.add_argument("--change", default="models.mlp.train.epochs=3",
                   help="the one-model re-run's `dvc exp run -S` (default: models.mlp.train.epochs=3)")
    p.add_argument("--skip-change", action="store_true", help="leave out the one-model re-run")
    p.add_argument("--flow", type=int, metavar="WORKERS",
                   help="also study each revision through the Prefect flow with this many Dask workers")
    p.add_argument("--json", type=Path, help="also write the raw timings here")
    p.add_argument("--keep", action="store_true", help="keep the studied clones (printed)")
    args = p.parse_args(argv)
    change = None if args.skip_change else args.change
    work = Path(tempfile.mkdtemp(prefix="bench-study-"))
    results = [bench_ref(ref, work, change=change, flow=args.flow) for ref in args.ref or ["HEAD"]]
    print(_report(results, change))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.keep:
        print(f"clones kept in {work}")
    else:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
