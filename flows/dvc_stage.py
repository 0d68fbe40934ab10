"""Run one DVC stage in this process, as ``dvc --wait-for-lock repro --single-item <stage>`` does.

Through DVC's Python API, so a stage costs no DVC start-up (about a second per stage as a separate
``dvc`` process). The stage command's output (``zooscope/run_stage.sh`` writes it to ``$ZOOSCOPE_STAGE_LOG``) and
DVC's own messages go to a caller's ``emit`` function, line by line, while the stage runs.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["STAGE_LOG_ENV", "DvcLockError", "StageFailed", "open_repo", "reproduce_stage"]


class DvcLockError(RuntimeError):
    """Another DVC process holds the repository lock or a stage's output (the flow retries the stage)."""


class StageFailed(RuntimeError):
    """A DVC stage exited with an error (its output is in the task's logs)."""


# DVC's repository lock is a POSIX file lock, which does not exclude two threads of one process, and DVC's
# API resolves paths against the working directory, as its CLI does: a stage runs in the repository root,
# holding this lock, command included. So the stages of one process take turns; worker processes (Dask)
# meet at DVC's file lock, which DVC releases while a stage's command runs, so their commands overlap.
_DVC_LOCK = threading.Lock()
STAGE_LOG_ENV = "ZOOSCOPE_STAGE_LOG"  # zooscope/run_stage.sh appends the stage command's output to this file


def _tail(path: Path, emit, done: threading.Event) -> None:
    """Call ``emit`` with each line appended to ``path`` until ``done`` is set, then with the rest.

    A line redrawn with carriage returns (a progress bar) is emitted once, as it was last drawn.
    """
    pending = ""
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        while True:
            finished = done.is_set()  # read once more after the writer has finished
            pending += f.read()
            *lines, pending = pending.split("\n")
            if finished:
                lines.append(pending)
            for line in lines:
                drawn = [part.rstrip() for part in line.split("\r") if part.strip()]
                if drawn:
                    emit(drawn[-1])
            if finished:
                return
            done.wait(0.2)


@contextlib.contextmanager
def _working_dir(path: Path):
    """``contextlib.chdir`` (Python >= 3.11) for Python 3.10."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


_DVC_LOGGERS = ("dvc", "dvc_data", "dvc_objects")  # dvc.logger.setup gives each its own terminal handlers


class _TaskLogHandler(logging.Handler):
    """Sends DVC's own messages ("Running stage ...", "Updating lock file ...") to the task's log."""

    def __init__(self, emit) -> None:
        super().__init__(logging.INFO)
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("dvc.repo.scm_context"):  # "git add ..." advice after every stage
            return
        try:
            message = record.getMessage().strip()
            self._emit(f"{record.levelname}: {message}" if record.levelno >= logging.WARNING else message)
        except Exception:  # noqa: BLE001 - a logging failure must not fail the stage
            self.handleError(record)


@contextlib.contextmanager
def _dvc_messages_to(emit):
    """DVC's loggers write to the terminal themselves; while a stage runs (under ``_DVC_LOCK``), to ``emit``."""
    loggers = [logging.getLogger(name) for name in _DVC_LOGGERS]
    saved = [(lg.handlers[:], lg.propagate) for lg in loggers]
    handler = _TaskLogHandler(emit)
    for lg in loggers:
        lg.handlers, lg.propagate = [handler], False
    try:
        yield
    finally:
        for lg, (handlers, propagate) in zip(loggers, saved):
            lg.handlers, lg.propagate = handlers, propagate


@contextlib.contextmanager
def _turn(stage: str, emit):
    """Hold ``_DVC_LOCK``, saying so in the log when the stage has to wait for another one first."""
    if not _DVC_LOCK.acquire(blocking=False):
        emit(f"{stage}: waiting for another stage of this process to finish (DVC runs one at a time)")
        _DVC_LOCK.acquire()
    try:
        yield
    finally:
        _DVC_LOCK.release()


@contextlib.contextmanager
def open_repo(root: Path, *, label: str, emit: Callable[[str], None]) -> Iterator:
    """DVC's ``Repo`` at ``root``, in this process's turn (``label`` names who waits), run from ``root``, with
    DVC's own messages sent to ``emit``. The repository lock is taken by each DVC call that needs it, waiting
    for another process's."""
    from dvc.repo import Repo

    with (_turn(label, emit), _working_dir(root), _dvc_messages_to(emit),
          Repo(str(root), _wait_for_lock=True) as dvc_repo):
        yield dvc_repo


def reproduce_stage(stage: str, *, repo: str | Path, emit: Callable[[str], None]) -> bool:
    """Reproduce ``stage`` (an address relative to ``repo``'s root) if DVC finds it stale.

    Waits for DVC's repository lock. Returns whether the stage ran. Raises ``StageFailed`` with the last
    lines of its output when the stage fails, ``DvcLockError`` when the lock cannot be had.
    """
    from dvc.exceptions import DvcException
    from dvc.lock import LockError

    root = Path(repo).resolve()
    lines: collections.deque[str] = collections.deque(maxlen=15)  # the tail, for the error message

    def collect(line: str) -> None:
        lines.append(line)
        emit(line)

    fd, log = tempfile.mkstemp(prefix="zooscope-stage-", suffix=".log")
    os.close(fd)
    done = threading.Event()
    reader = threading.Thread(target=_tail, args=(Path(log), collect, done), daemon=True)
    reader.start()
    failure = None
    try:
        with open_repo(root, label=stage, emit=collect) as dvc_repo:
            ran = dvc_repo.reproduce(stage, single_item=True, run_env={STAGE_LOG_ENV: log})
    except LockError as err:
        raise DvcLockError(f"{stage}: the DVC lock stayed busy: {err}") from err
    except DvcException as err:
        if isinstance(err.__cause__, LockError):  # an output locked by another DVC process ("... is busy")
            raise DvcLockError(f"{stage}: {err.__cause__}") from err
        failure = err
    finally:
        done.set()
        reader.join()
        os.unlink(log)
    if failure is not None:
        cause = f" ({failure.__cause__})" if failure.__cause__ else ""  # e.g. the command's exit status
        tail = "\n".join(lines)
        raise StageFailed(f"stage {stage} failed: {failure}{cause}\n{tail}")
    return bool(ran)
