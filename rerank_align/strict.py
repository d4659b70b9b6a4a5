"""Strict dict → dataclass conversion with one-line errors naming the key path.

Each field of a recipe dataclass documents itself once in ``metadata["help"]`` (docs are generated from it) and
may carry ``metadata["min"]`` / ``["max"]`` bounds. Unknown keys fail with the closest valid key.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from rerank_align.errors import RecipeError


def suggest(key: str, valid: typing.Iterable[str]) -> str | None:
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f"did you mean '{match[0]}'?" if match else None


def unknown_key_error(path: str, key: str, valid: typing.Iterable[str]) -> RecipeError:
    valid = list(valid)
    hint = suggest(key, valid) or f"valid keys: {', '.join(sorted(valid))}"
    return RecipeError(f"unknown key '{key}'", where=f"{path}.{key}" if path else key, hint=hint)


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, path: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``; raise RecipeError naming ``path``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, path)
            except RecipeError as e:
                errors.append(e)
        raise (
            errors[0]
            if len(errors) == 1
            else RecipeError(
                f"expected {' or '.join(_type_name(a) for a in args if a is not type(None))}, got {value!r}",
                where=path,
            )
        )
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            hint = suggest(str(value), [str(a) for a in allowed]) or f"one of {', '.join(map(str, allowed))}"
            raise RecipeError(f"invalid value {value!r}", where=path, hint=hint)
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # a section parsed (and resolved) on its own, e.g. a suite's collections
            return value
        return from_dict(tp, value, path)
    if origin in (list, typing.List):  # noqa: UP006
        if not isinstance(value, list):
            raise RecipeError(f"expected a list, got {type(value).__name__}", where=path)
        (item,) = get_args(tp) or (Any,)
        return [coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, typing.Dict):  # noqa: UP006
        if not isinstance(value, dict):
            raise RecipeError(f"expected a mapping, got {type(value).__name__}", where=path)
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"expected true or false, got {value!r}", where=path)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"expected an integer, got {value!r}", where=path)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"expected a number, got {value!r}", where=path)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise RecipeError(f"expected a string, got {value!r}", where=path)
        return value
    if tp is Path:  # `~` and $VARS expanded; the caller resolves a relative path against what it knows
        if not isinstance(value, str):
            raise RecipeError(f"expected a path, got {value!r}", where=path)
        return Path(os.path.expandvars(os.path.expanduser(value)))
    return value


def check_keys(cls: type, data: dict, path: str = "") -> None:
    """Every key of ``data`` is a field of dataclass ``cls`` (else one line with the closest field)."""
    fields = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in fields:
            raise unknown_key_error(path, str(key), fields)


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``: unknown keys, wrong types and out-of-range numbers fail here."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"expected a mapping, got {type(data).__name__}", where=path or "<recipe>")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    check_keys(cls, data, path)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = fields[name]
        where = f"{path}.{name}" if path else name
        v = coerce(value, hints[name], where)
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if lo is not None and v < lo:
                raise RecipeError(f"{v} is below the minimum {lo}", where=where)
            if hi is not None and v > hi:
                raise RecipeError(f"{v} is above the maximum {hi}", where=where)
        kwargs[name] = v
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        where = f"{path}.{missing[0]}" if path else missing[0]
        raise RecipeError(
            "required key is missing", where=where, hint=fields[missing[0]].metadata.get("help")
        )
    return cls(**kwargs)


def field(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    min: float | None = None,
    max: float | None = None,
    **kw: Any,
) -> Any:
    """A dataclass field with its one-line documentation and optional bounds."""
    md = {"help": help, "min": min, "max": max}
    if isinstance(default, (list, dict)) or (
        dataclasses.is_dataclass(default) and not isinstance(default, type)
    ):
        return dataclasses.field(default_factory=lambda d=default: copy.deepcopy(d), metadata=md, **kw)
    return dataclasses.field(default=default, metadata=md, **kw)
