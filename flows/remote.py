"""A study spread over machines: each worker runs its stages in a clone of its own, and data moves through a
DVC remote.

The coordinator (the process that runs the flow, in its clone) owns the study's state: its ``dvc.lock`` and
its workspace. It runs the graph's root stages itself (``inputs``: the study resolved from ``params.yaml`` and
the local files it reads) and pushes their outputs. For each later stage that its clone finds stale, it hands
a worker a ``Handoff``:

- the lock entries of the stage's root stages, which the worker reproduces in its own clone and must find
  equal (the same params, code and local files on every machine: a clone that differs is refused);
- the lock entries of its other upstream stages, whose outputs the worker pulls from the remote, and the
  files of their outputs that DVC does not cache (metrics and plot data: git-tracked, never in a remote);
- the stage's own entry, if it has one, so that a persistent output (a pair cache) is pulled and reused.

The worker reproduces the stage (``dvc repro --single-item``), pushes its outputs and returns its lock entry
and its uncached files. The coordinator writes both into its clone, pulls the outputs and checks that its own
DVC finds the stage up to date, so its clone ends as a single-machine run leaves it: the same ``dvc.lock``,
outputs and metrics.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

from flows.dvc_stage import StageFailed, open_repo, reproduce_stage

__all__ = ["CLONE_ENV", "Handoff", "adopt", "handoff", "publish_stage", "run_in_clone", "worker_clone"]

CLONE_ENV = "ZOOSCOPE_CLONE"  # on each worker: the path of that worker's own clone of the study
LOCK = "dvc.lock"

Emit = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Handoff:
    """What a worker needs from the coordinator to run one stage in its own clone.

    Attributes:
        roots: lock entries of the root stages upstream of the stage (reproduced and compared by the worker).
        pulled: lock entries of the other upstream stages (their outputs pulled from the remote).
        own: the stage's own lock entry in the coordinator's clone, or None.
        files: relative path -> bytes of the upstream outputs that DVC does not cache.
    """

    roots: dict[str, dict]
    pulled: dict[str, dict]
    own: dict | None
    files: dict[str, bytes]


def worker_clone() -> Path:
    """This worker's own clone of the study, from ``$ZOOSCOPE_CLONE``; StageFailed when unset or not one."""
    value = os.environ.get(CLONE_ENV, "")
    where = socket.gethostname()
    if not value:
        raise StageFailed(f"worker on {where}: {CLONE_ENV} is not set; start each worker with {CLONE_ENV}=<its own "
                          "clone of the study> (a git clone of the same commit, with the DVC remote configured)")
    clone = Path(value).resolve()
    if not (clone / "dvc.yaml").is_file() or not (clone / ".dvc").is_dir():
        raise StageFailed(f"worker on {where}: {CLONE_ENV}={value} is not a clone of the study "
                          "(no dvc.yaml and .dvc there)")
    return clone


def _lock(root: Path) -> dict[str, dict]:
    """The stages' entries of ``root``'s ``dvc.lock``, read as DVC reads them: YAML 1.2, whose floats (``1e-05``)
    PyYAML's YAML 1.1 would read as strings and write back quoted, changing a param's value."""
    from dvc.utils.serialize import parse_yaml

    path = root / LOCK
    if not path.exists():
        return {}
    return parse_yaml(path.read_text(), str(path)).get("stages", {})


def _write_entries(root: Path, entries: dict[str, dict]) -> None:
    """Set these stages' entries in ``root``'s ``dvc.lock``, as DVC itself writes them (its own YAML writer)."""
    from dvc.utils.serialize import modify_yaml

    if not entries:
        return
    with modify_yaml(str(root / LOCK)) as data:
        data.setdefault("schema", "2.0")
        data.setdefault("stages", {}).update(entries)


def _write_files(root: Path, files: dict[str, bytes]) -> None:
    from zooscope.io import atomic_path

    for rel, content in files.items():
        with atomic_path(root / rel) as tmp:
            tmp.write_bytes(content)


def _stage(dvc_repo, name: str):
    (stage,) = dvc_repo.stage.collect(name)
    return stage


def _uncached_files(dvc_repo, root: Path, names: Iterable[str]) -> dict[str, bytes]:
    """The files of these stages' outputs that DVC does not cache (metrics, plot data), as relative path -> bytes."""
    files: dict[str, bytes] = {}
    for name in names:
        for out in _stage(dvc_repo, name).outs:
            if out.use_cache:
                continue
            path = root / out.def_path
            for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
                if file.is_file():
                    files[file.relative_to(root).as_posix()] = file.read_bytes()
    return files


def _pull(dvc_repo, targets: list[str], *, remote: str | None, what: str) -> None:
    from dvc.exceptions import DvcException

    if not targets:
        return
    try:
        dvc_repo.pull(targets=targets, remote=remote, force=True)
    except DvcException as err:
        raise StageFailed(f"could not pull {what} from the DVC remote {remote or '(default)'}: {err}") from err


def handoff(root: Path, stage: str, *, upstream: list[str], roots: set[str], emit: Emit) -> Handoff:
    """What a worker needs to run ``stage`` (whose upstream stages are ``upstream``), from the coordinator's clone."""
    lock = _lock(root)
    missing = [name for name in upstream if name not in lock]
    if missing:
        raise StageFailed(f"stage {stage}: upstream stage(s) {', '.join(missing)} have no entry in {root / LOCK}")
    pulled = [name for name in upstream if name not in roots]
    with open_repo(root, label=stage, emit=emit) as dvc_repo:
        files = _uncached_files(dvc_repo, root, pulled)
    return Handoff(roots={name: lock[name] for name in upstream if name in roots},
                   pulled={name: lock[name] for name in pulled}, own=lock.get(stage), files=files)


def publish_stage(root: Path, stage: str, *, remote: str | None, emit: Emit) -> bool:
    """In the coordinator's clone: whether ``stage`` is stale; if it is not, push its outputs (so that a worker
    can pull them) and return False."""
    from dvc.exceptions import DvcException

    with open_repo(root, label=stage, emit=emit) as dvc_repo:
        try:
            if dvc_repo.status(targets=[stage]):
                return True
            dvc_repo.push(targets=[stage], remote=remote)
        except DvcException as err:
            raise StageFailed(f"stage {stage}: could not check it or push its outputs to the DVC remote "
                              f"{remote or '(default)'}: {err}") from err
    return False


def _differences(mine: dict, theirs: dict) -> list[str]:
    """The paths and params whose hashes or values differ between two lock entries of one stage."""
    def items(entry: dict) -> dict[str, object]:
        flat: dict[str, object] = {"cmd": entry.get("cmd")}
        for kind in ("deps", "outs"):
            for item in entry.get(kind, []):
                flat[item["path"]] = {k: v for k, v in item.items() if k != "path"}
        for file, values in (entry.get("params") or {}).items():
            for key, value in values.items():
                flat[f"{file}:{key}"] = value
        return flat

    a, b = items(mine), items(theirs)
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))


def run_in_clone(stage: str, work: Handoff, *, clone: Path, remote: str | None, emit: Emit) -> dict:
    """On a worker: reproduce ``stage`` in ``clone`` from what ``work`` hands over, push its outputs.

    Returns ``{"entry": its lock entry, "files": its uncached output files, "ran": whether it ran, "worker": where}``.
    Raises StageFailed when the clone resolves the study differently from the coordinator or a transfer fails.
    """
    from dvc.exceptions import DvcException

    where = f"{socket.gethostname()}:{clone}"
    with open_repo(clone, label=stage, emit=emit):
        _write_entries(clone, {**work.roots, **work.pulled, **({stage: work.own} if work.own else {})})
        _write_files(clone, work.files)
    for name, theirs in work.roots.items():
        reproduce_stage(name, repo=clone, emit=emit)
        differ = _differences(_lock(clone)[name], theirs)
        if differ:
            raise StageFailed(f"stage {stage}: the clone {where} resolves stage {name} differently from the "
                              f"coordinator ({', '.join(differ[:6])}); every clone needs the same commit, params.yaml "
                              "and local input files")
    with open_repo(clone, label=stage, emit=emit) as dvc_repo:
        _pull(dvc_repo, list(work.pulled), remote=remote, what=f"the outputs upstream of {stage}")
        if work.own:
            kept = [out.def_path for out in _stage(dvc_repo, stage).outs if out.persist and out.use_cache]
            try:
                _pull(dvc_repo, kept, remote=remote, what=f"the kept outputs of {stage}")
            except StageFailed as err:  # a cache to reuse, not an input: the stage rebuilds it
                emit(f"{stage}: starting without its earlier {', '.join(kept)} ({err})")
    ran = reproduce_stage(stage, repo=clone, emit=emit)
    with open_repo(clone, label=stage, emit=emit) as dvc_repo:
        try:
            dvc_repo.push(targets=[stage], remote=remote)
        except DvcException as err:
            raise StageFailed(f"stage {stage}: could not push its outputs from {where} to the DVC remote "
                              f"{remote or '(default)'}: {err}") from err
        files = _uncached_files(dvc_repo, clone, [stage])
    return {"entry": _lock(clone)[stage], "files": files, "ran": ran, "worker": where}


def adopt(root: Path, stage: str, result: dict, *, remote: str | None, emit: Emit) -> None:
    """In the coordinator's clone: take a worker's result for ``stage`` (its lock entry and uncached files),
    pull its outputs, and check that this clone's DVC finds the stage up to date (StageFailed if not)."""
    with open_repo(root, label=stage, emit=emit) as dvc_repo:
        _write_entries(root, {stage: result["entry"]})
        _write_files(root, result["files"])
        _pull(dvc_repo, [stage], remote=remote, what=f"the outputs of {stage}")
        for out in _stage(dvc_repo, stage).outs:  # git ignores them, as when DVC writes them itself
            out.ignore()
        changed = dvc_repo.status(targets=[stage])
    if changed:
        raise StageFailed(f"stage {stage} ran on {result['worker']}, whose clone differs from this one: "
                          f"{changed.get(stage, changed)}; every clone needs the same commit and params.yaml")
