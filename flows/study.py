"""Prefect orchestration of a zooscope study: one task per DVC stage, the edges from DVC's own graph.

DVC decides what is stale; Prefect runs and shows. Each task is ``dvc --wait-for-lock repro
--single-item <stage>`` (a no-op when the stage is up to date), run through DVC's Python API in the task's
process (no DVC start-up per stage), after its upstream stages. Stages in one process take turns; with
the Dask runner, independent models' commands run side by side, one per worker process. A failed stage
fails its downstream tasks with a message naming it; the other stages' results stay. At the end the flow
publishes the per-model table, the per-category results and the report path as Prefect artifacts.

Usage:
    python -m flows.study run [--repo .] [--models a,b] [--runner threads|dask|ray] [--address tcp://...]
    python -m flows.study run --runner dask --address tcp://... --remote NAME   # workers in clones of their own
    python -m flows.study serve --cron "0 3 * * *"      # a schedule, served by this process
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.dvc_stage import DvcLockError, StageFailed, reproduce_stage
from flows.remote import CLONE_ENV, Handoff, adopt, handoff, publish_stage, run_in_clone, worker_clone

__all__ = ["main", "run_stage", "stage_graph", "study", "study_flow"]

RUNNERS = ("threads", "dask", "ray")


def stage_graph(repo: str | Path, *, models: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Stage name -> names of the stages it depends on, read from DVC's own pipeline index.

    With ``models``, only the per-model stages (``<stage>@<model>``) of those models and what they
    depend on are kept.
    """
    from dvc.repo import Repo

    root = Path(repo).resolve()

    def address(stage) -> str:
        """``dvc repro`` target of a stage, relative to the repository root (not to this process's cwd)."""
        dvcfile = Path(stage.dvcfile.path).resolve()
        return stage.name if dvcfile == root / "dvc.yaml" else f"{dvcfile.relative_to(root)}:{stage.name}"

    with Repo(str(root)) as dvc_repo:
        graph = dvc_repo.index.graph  # an edge points from a stage to a stage it depends on
        upstream = {address(s): sorted(address(d) for d in graph.successors(s)) for s in graph.nodes}
    if models is None:
        return upstream
    unknown = set(models) - {name.partition("@")[2] for name in upstream}
    if unknown:
        raise ValueError(f"models not in the pipeline: {', '.join(sorted(unknown))}")
    keep: set[str] = set()
    todo = [name for name in upstream if name.partition("@")[2] in models]
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(upstream[name])
    return {name: deps for name, deps in upstream.items() if name in keep}


def _retry_on_lock(task, task_run, state) -> bool:
    try:
        state.result()
    except DvcLockError:
        return True
    except Exception:  # noqa: BLE001 - any other failure is final
        return False
    return False


@task(name="dvc-stage", task_run_name="{stage}", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=3,
      retry_condition_fn=_retry_on_lock)
def run_stage(stage: str, repo: str) -> str:
    """``dvc --wait-for-lock repro --single-item <stage>`` in this process; its output is the task's log."""
    logger = get_run_logger()
    outcome = "ran" if reproduce_stage(stage, repo=repo, emit=logger.info) else "up to date"
    logger.info("%s: %s", stage, outcome)
    return outcome


@task(name="upstream-failed", task_run_name="{stage}", cache_policy=NO_CACHE)
def upstream_failed(stage: str, failed: list[str]) -> None:
    """Stands in for a stage whose upstream failed, so the UI shows why it did not run."""
    raise StageFailed(f"stage {stage} not run: upstream stage(s) {', '.join(failed)} failed")


def _publish(repo: Path, outcomes: dict[str, str]) -> None:
    """Per-model table, per-category table, summary and report path as Prefect artifacts."""
    from zooscope.artifacts import MODEL_METRICS, PARAMS, REPORT, STUDY_METRICS
    from zooscope.config import load_study
    from zooscope.summary import category_rows, model_table, study_facts

    study = load_study(repo / PARAMS)
    table = model_table(study, metrics_dir=repo / MODEL_METRICS)
    create_table_artifact(key="per-model-metrics", table=table.to_dicts(),
                          description="Per-model metrics (metrics/models/MODEL.json) and category relative to the base")
    study_metrics = repo / STUDY_METRICS
    summary = json.loads(study_metrics.read_text()) if study_metrics.exists() else None
    rows = category_rows(summary, subsets=("all",)) if summary else []
    if rows:
        create_table_artifact(key="per-category", table=rows, description="metrics/study.json: per methodology category")
    facts = study_facts(study, summary)
    findings = facts["findings"]
    report = repo / REPORT
    ran = sorted(s for s, o in outcomes.items() if o == "ran")
    lines = [
        f"# zooscope study: {study.dataset.source}, {len(study.models)} models, base `{study.base}`",
        "", f"Stages re-run: {len(ran)} of {len(outcomes)}" + (f" ({', '.join(ran[:12])}{', ...' if len(ran) > 12 else ''})" if ran else ""),
        *(line for sentence in facts["headline"] for line in ("", sentence)),
        "", *([f"- {f}" for f in findings] or ["- best top-1: " + _best(table)]),
        *(["", "Zoo design warnings:", *(f"- {w}" for w in facts["lint"])]
          if summary and summary.get("lint") else []),
        "", f"Report: `{report}`" if report.exists() else "Report: not built by this pipeline yet",
    ]
    create_markdown_artifact(key="study-summary", markdown="\n".join(lines), description="zooscope study summary")


def _best(table) -> str:
    done = table.drop_nulls("top1")
    if done.is_empty():
        return "no metrics yet"
    row = done.sort("top1", descending=True).row(0, named=True)
    return f"{row['model']} {100 * row['top1']:.2f}%"


@task(name="dvc-stage-in-clone", task_run_name="{stage}", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=3,
      retry_condition_fn=_retry_on_lock)
def run_stage_in_clone(stage: str, work: Handoff, remote: str | None) -> dict:
    """On a worker: the stage in the worker's own clone ($ZOOSCOPE_CLONE), its data through the DVC remote."""
    logger = get_run_logger()
    result = run_in_clone(stage, work, clone=worker_clone(), remote=remote, emit=logger.info)
    logger.info("%s: %s on %s", stage, "ran" if result["ran"] else "up to date", result["worker"])
    return result


def _start_local(stage: str, root: Path, failed: list[str]):
    """A stage in the repository the workers share: a task, or its stand-in when an upstream stage failed."""
    return upstream_failed.submit(stage, failed) if failed else run_stage.submit(stage, str(root))


def _settle_local(stage: str, future, root: Path) -> str:
    return future.result(raise_on_failure=False) if future.state.is_completed() else "failed"


class _Clones:
    """A stage's start and end when each worker has its own clone and data moves through the DVC remote
    ``remote`` (flows/remote.py): roots run here, a stale stage is handed to a worker, its result adopted here."""

    def __init__(self, graph: dict[str, list[str]], remote: str | None, logger) -> None:
        self.graph, self.remote, self.logger = graph, remote, logger
        self.roots = {stage for stage, deps in graph.items() if not deps}

    def start(self, stage: str, root: Path, failed: list[str]):
        if failed:
            return upstream_failed.submit(stage, failed)
        emit = self.logger.info
        try:
            if stage in self.roots:
                ran = reproduce_stage(stage, repo=root, emit=emit)
                publish_stage(root, stage, remote=self.remote, emit=emit)
                return "ran" if ran else "up to date"
            if not publish_stage(root, stage, remote=self.remote, emit=emit):
                return "up to date"
            work = handoff(root, stage, upstream=self.graph[stage], roots=self.roots, emit=emit)
        except (StageFailed, DvcLockError) as err:
            self.logger.error("%s", err)
            return "failed"
        return run_stage_in_clone.submit(stage, work, self.remote)

    def settle(self, stage: str, future, root: Path) -> str:
        if not future.state.is_completed():
            self.logger.error("%s: %s", stage, future.state.message)
            return "failed"
        result = future.result()
        try:
            adopt(root, stage, result, remote=self.remote, emit=self.logger.info)
        except StageFailed as err:
            self.logger.error("%s", err)
            return "failed"
        return "ran" if result["ran"] else "up to date"


@flow(name="zooscope-stages", log_prints=True)
def study_flow(repo: str = ".", models: list[str] | None = None, remote: str | None = None) -> dict[str, str]:
    """Run every stage of the DVC pipeline as a task, respecting DVC's edges; publish the results.

    With ``remote`` (a DVC remote's name), each worker runs its stages in its own clone ($ZOOSCOPE_CLONE)
    and the data moves through that remote; this process's clone ends as a single-machine run leaves it.
    """
    logger = get_run_logger()
    root = Path(repo).resolve()
    graph = stage_graph(root, models=models)
    logger.info("%d stages from %s/dvc.yaml", len(graph), root)
    if remote is None:
        start, settle = _start_local, _settle_local
    else:
        clones = _Clones(graph, remote, logger)
        start, settle = clones.start, clones.settle
    outcomes: dict[str, str] = {}
    running: dict = {}
    pending = dict(graph)
    while pending or running:
        progressed = False
        for stage, future in list(running.items()):
            if future.state.is_final():
                outcomes[stage] = settle(stage, future, root)
                del running[stage]
                progressed = True
        for stage, deps in list(pending.items()):
            if all(d in outcomes for d in deps):
                started = start(stage, root, [d for d in deps if outcomes[d] == "failed"])
                if isinstance(started, str):
                    outcomes[stage] = started
                else:
                    running[stage] = started
                del pending[stage]
                progressed = True
        if not progressed:
            time.sleep(0.2)
    bad = sorted(s for s, o in outcomes.items() if o == "failed")
    _publish(root, outcomes)
    if bad:
        raise StageFailed(f"{len(bad)} stage(s) failed or were skipped: {', '.join(bad)}")
    return outcomes


def _task_runner(runner: str, *, address: str | None, workers: int):
    if runner == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers)
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True})
    if runner == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError:
            raise ValueError("runner 'ray' needs prefect-ray: pip install prefect-ray") from None
        return RayTaskRunner(address=address) if address else RayTaskRunner()
    raise ValueError(f"unknown runner {runner!r}; choose one of {', '.join(RUNNERS)}")


_THREADS_SHARE = (f"--remote needs workers with clones of their own: use --runner dask (or ray), with {CLONE_ENV} "
                  "set on each worker")


@flow(name="zooscope-study", log_prints=True)
def study(repo: str = ".", models: list[str] | None = None, runner: str = "threads", address: str | None = None,
          workers: int = 2, remote: str | None = None) -> dict[str, str]:
    """The study flow: pick the task runner (local threads, a Dask cluster, Ray), then run the stages.

    Args:
        repo: the DVC repository of the study (its params.yaml is the study file).
        models: only these models' stages (and what they need); all stages when empty.
        runner: ``threads`` (default), ``dask`` (``address`` of a scheduler, or a local cluster of
            ``workers`` processes) or ``ray``.
        workers: how many stages run at once.
        remote: a DVC remote's name: each worker runs its stages in its own clone ($ZOOSCOPE_CLONE on the
            worker) and pulls and pushes their data there (flows/remote.py); otherwise every worker works
            in ``repo`` itself (one machine, or a shared file system).
    """
    if remote is not None and runner == "threads":
        raise ValueError(_THREADS_SHARE)
    inner = study_flow.with_options(task_runner=_task_runner(runner, address=address, workers=workers))
    return inner(repo=repo, models=models or None, remote=remote)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flows.study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("run", "serve"):
        s = sub.add_parser(name, help="run the study once" if name == "run" else "serve the flow on a cron schedule")
        s.add_argument("--repo", default=".", help="the study's DVC repository (default: .)")
        s.add_argument("--models", default="", help="comma-separated model ids (default: all)")
        s.add_argument("--runner", default="threads", choices=RUNNERS, help="task runner (default: threads)")
        s.add_argument("--address", default=None, help="Dask scheduler / Ray address (default: a local cluster)")
        s.add_argument("--workers", type=int, default=2, help="stages at once (default: 2)")
        s.add_argument("--remote", default=None, metavar="NAME",
                       help=f"a DVC remote every clone has: each worker runs in its own clone (${CLONE_ENV} on the "
                            "worker) and moves data through this remote (default: workers share --repo)")
        if name == "serve":
            s.add_argument("--cron", required=True, help='cron schedule, e.g. "0 3 * * *"')
    args = p.parse_args(argv)
    if args.remote is not None and args.runner == "threads":
        p.error(_THREADS_SHARE)
    params = {"repo": str(Path(args.repo).resolve()), "models": [m for m in args.models.split(",") if m] or None,
              "runner": args.runner, "address": args.address, "workers": args.workers, "remote": args.remote}
    if args.command == "serve":
        study.serve(name="zooscope-nightly", cron=args.cron, parameters=params)
        return 0
    try:
        study(**params)
    except StageFailed as err:
        print(f"flows.study: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
