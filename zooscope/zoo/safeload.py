"""Load checkpoints without executing code.

``.safetensors`` files are read with safetensors; anything else goes through
``torch.load(weights_only=True)``, whose restricted unpickler refuses every object that is not a
tensor or a plain container. A checkpoint that needs more is refused with :class:`UnsafeCheckpointError`;
one that cannot be read at all (empty, truncated, not a checkpoint) with :class:`DamagedCheckpointError`.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

__all__ = ["UnsafeCheckpointError", "DamagedCheckpointError", "load_state_dict_file"]

_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")


class UnsafeCheckpointError(ValueError):
    """A checkpoint that cannot be loaded without running code from it."""


class DamagedCheckpointError(ValueError):
    """A checkpoint file that is empty, truncated or not a checkpoint of the format its name says."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _damaged(path: Path, what: str, err: BaseException) -> DamagedCheckpointError:
    size = path.stat().st_size
    return DamagedCheckpointError(f"{path}: not a readable {what} ({size:,} bytes; empty, truncated or another "
                                  f"format?); replace the file. Detail: {_first_line(err)}")


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` (safetensors, or a weights-only torch pickle), on the CPU.

    Common wrappers (``{"state_dict": ...}``, ``{"model": ...}``, EMA weights first) are unwrapped.
    """
    path = Path(path).expanduser()  # params.yaml may say file:~/checkpoints/...
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except SafetensorError as err:
            raise _damaged(path, "safetensors file", err) from None
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):  # torch's zip format, or a pickle (protocol 2+)
        raise _damaged(path, "torch checkpoint", ValueError(f"starts with {head!r}, not a zip archive or a pickle"))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise _damaged(path, "torch checkpoint", err) from None
        raise UnsafeCheckpointError(
            f"{path}: refusing to load this checkpoint: it is a pickle that needs code execution to unpickle, "
            f"and zooscope only loads weights (safetensors, or torch.load with weights_only=True). "
            f"Convert it to safetensors in a trusted environment. Detail: {_first_line(err)}"
        ) from None
    except (EOFError, OSError, RuntimeError, KeyError, ValueError, AttributeError, TypeError, IndexError) as err:
        raise _damaged(path, "torch checkpoint", err) from None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UnsafeCheckpointError(f"{path}: not a state dict (expected a mapping of parameter names to tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}
