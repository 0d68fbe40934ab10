"""What every stage CLI (stages/*.py) shares: the parser skeleton, loading the study, and clean error exits. It
lives in the library, so the library's dependency covers it in every stage of dvc.yaml."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from zooscope.config import ModelSpec, Study, StudyError, load_study
from zooscope.io import DiskFullError


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="the study file (default: params.yaml; dvc.yaml gives the "
                                                           "stages after inputs the study it resolved)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def model_parser(description: str) -> argparse.ArgumentParser:
    p = parser(description)
    p.add_argument("--model", help="model id (a key of 'models' in the study file); default: the one of the DVC stage "
                                   "running this command ($DVC_STAGE, e.g. fetch@cnn_base)")
    return p


def model_id(args: argparse.Namespace) -> str:
    """The model a per-model stage works on: ``--model``, else the part after '@' of ``$DVC_STAGE``, which DVC
    sets for every stage command. dvc.yaml's commands therefore never carry a model id, so an id never reaches
    a shell, whatever params.yaml holds."""
    if args.model:
        return args.model
    stage = os.environ.get("DVC_STAGE", "")
    if "@" not in stage:
        raise StudyError("no model given: pass --model <id> (under dvc repro, $DVC_STAGE names it)")
    return stage.rsplit("@", 1)[1]  # addressing may start with a dvc.yaml path; ids hold no '@'


def load(params: str, model: str | None = None) -> tuple[Study, ModelSpec | None]:
    """The validated study and, when asked, one model's spec (``model``: its id)."""
    study = load_study(params)
    cap_threads(study.threads)
    if model is None:
        return study, None
    if model not in study.models:
        raise StudyError(f"{params}: no model {model!r} under 'models'; ids: {', '.join(study.models)}")
    return study, study.models[model]


def cap_threads(threads: int) -> None:
    """Cap this process's BLAS and OpenMP pools (numpy's OpenBLAS, FAISS's, scikit-learn's) at ``threads``, the
    study's setting, whatever the machine has. A product split among more threads sums in another order: a probe's
    accuracy moved by 0.0006 between 1 and 2 OpenBLAS threads, so uncapped, the same params gave other numbers on a
    machine with more cores. The libraries loaded already are capped through threadpoolctl, those loaded later by
    their environment variables (the study's value replaces the caller's)."""
    from threadpoolctl import threadpool_limits

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    threadpool_limits(limits=threads)


def use_threads(study: Study) -> None:
    """Cap torch's CPU threads at the study's setting too (stages that run networks call this)."""
    import torch

    torch.set_num_threads(study.threads)


#: What bad input raises: a study that cannot be used, a value the library refuses (its message names the
#: file, key, model or value), a missing artifact or input file, a full disk. Anything else is a bug and keeps its
#: traceback.
EXPECTED = (StudyError, ValueError, FileNotFoundError, DiskFullError)


def run(work: Callable[[argparse.Namespace], None], p: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run ``work``; bad input (:data:`EXPECTED`) prints one clear line and exits 2."""
    args = p.parse_args(argv)
    try:
        work(args)
    except EXPECTED as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0
