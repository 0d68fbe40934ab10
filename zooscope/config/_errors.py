"""The schema's base class and its error messages: every message names the key and what is allowed there."""

from __future__ import annotations

import typing

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["StudyError", "Strict", "format_errors"]


class StudyError(ValueError):
    """A study declaration that cannot be used; the message names the file and key."""


class Strict(BaseModel):
    """A frozen schema section that refuses unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def format_errors(err: ValidationError, *, root: type[BaseModel], prefix: str = "") -> str:
    """pydantic's errors as one line: ``<dotted key>: <what is wrong>`` per error, unknown keys with the
    keys allowed at that place."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            allowed = _allowed_keys(root, e["loc"])
            if allowed:
                msg += f"; allowed here: {', '.join(allowed)}"
        elif e["type"] == "literal_error":
            msg = f"{msg}, got {e.get('input')!r}"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """The schema classes an annotation can hold (``X``, ``X | None``, ``dict[str, X]``: X)."""
    args = typing.get_args(annotation) or (annotation,)
    if typing.get_origin(annotation) is dict:
        args = args[1:]
    return [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]


def _allowed_keys(root: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the schema class that rejected an unknown key at ``loc``, walking down from ``root``
    (a mapping field such as ``models`` takes one more part, its key, before its value's class)."""
    cls, parts, i = root, list(loc[:-1]), 0
    while i < len(parts):
        field = cls.model_fields.get(str(parts[i]))
        if field is None:
            return []
        inner = _models_in(field.annotation)
        if not inner:
            return []
        i += 2 if typing.get_origin(field.annotation) is dict else 1
        cls = inner[0]
    return list(cls.model_fields)
