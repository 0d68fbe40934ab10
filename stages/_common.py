"""What every stage CLI shares: the parser skeleton, loading the study, and clean error exits."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from zooscope.config import ModelSpec, Study, StudyError, load_study


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default="params.yaml", help="the study file (default: params.yaml)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def model_parser(description: str) -> argparse.ArgumentParser:
    p = parser(description)
    p.add_argument("--model", required=True, help="model id (a key of 'models' in the study file)")
    return p


def load(params: str, model_id: str | None = None) -> tuple[Study, ModelSpec | None]:
    """The validated study and, when asked, one model's spec."""
    study = load_study(params)
    if model_id is None:
        return study, None
    if model_id not in study.models:
        raise StudyError(f"{params}: no model {model_id!r} under 'models'; ids: {', '.join(study.models)}")
    return study, study.models[model_id]


def use_threads(study: Study) -> None:
    """Cap torch's CPU threads at the study's setting (stages that run networks call this)."""
    import torch

    torch.set_num_threads(study.threads)


#: What bad input raises: a study that cannot be used, a value the library refuses (its message names the
#: file, key, model or value), a missing artifact or input file. Anything else is a bug and keeps its traceback.
EXPECTED = (StudyError, ValueError, FileNotFoundError)


def run(work: Callable[[argparse.Namespace], None], p: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run ``work``; bad input (:data:`EXPECTED`) prints one clear line and exits 2."""
    args = p.parse_args(argv)
    try:
        work(args)
    except EXPECTED as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0
