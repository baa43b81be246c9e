"""Settings from plain data (YAML, JSON, flags), with pydantic's findings as one line.

The line names where the value sits (``adapter.alpha``, ``dataset.resplit.eval_fraction``),
what was given, and what is allowed; unknown keys list the known ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from ..errors import ConfigError

T = TypeVar("T")


@cache
def adapter_of(cls: Any) -> TypeAdapter:
    return TypeAdapter(cls)


def where(prefix: str, loc: tuple[Any, ...]) -> str:
    """``adapter`` + ``("alpha",)`` -> ``adapter.alpha``; list positions as ``[i]``."""
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = str(part)
            text += ("." if text else "") + (name if name.isprintable() else repr(name))
    return text or "value"


def _known(cls: Any, loc: tuple[Any, ...]) -> list[str]:
    """The keys the dataclass at `loc` (inside `cls`) accepts, for an unknown-key message."""
    for part in loc:
        hints = {f.name: f.type for f in dataclasses.fields(cls)} if _is_dc(cls) else {}
        inner = getattr(cls, "__pydantic_fields__", {}).get(part)
        cls = getattr(inner, "annotation", None) if inner else hints.get(part)
    if _is_dc(cls):
        return sorted(f.name for f in dataclasses.fields(cls))
    return []


def _is_dc(cls: Any) -> bool:
    return isinstance(cls, type) and dataclasses.is_dataclass(cls)


def _field_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The location without pydantic's union-member tags (``list[...]``, ``int``, ...)."""
    tags = ("int", "float", "str", "bool", "none", "list", "dict", "tuple")
    return tuple(
        p for p in loc if isinstance(p, int) or not (set(str(p)) & set("[]()-,") or str(p) in tags)
    )


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "string_pattern_mismatch":
        return "must be a plain name: letters, digits, '.', '_' and '-' only (no path, no space)"
    return str(error.get("msg", "invalid")).replace("Value error, ", "")


def one_line(err: ValidationError, prefix: str = "", cls: Any = None) -> str:
    """The first finding of `err` as one line (the rest follow once it is fixed); the
    findings of the forms a union allows are joined with "or"."""
    errors = err.errors(include_url=False)
    unknown = ("unexpected_keyword_argument", "extra_forbidden")
    errors.sort(key=lambda e: e.get("type") not in unknown)  # a typo first: it explains more
    first = errors[0]
    loc, kind = _field_loc(tuple(first.get("loc", ()))), first.get("type", "")
    if kind in unknown:
        known = _known(cls, loc[:-1]) if cls is not None else []
        hint = f"; known keys: {', '.join(known)}" if known else ""
        return f"unknown config key {where(prefix, loc)!r}{hint}"
    if kind in ("missing_argument", "missing"):
        return f"{where(prefix, loc)} is missing; give it a value"
    same = [e for e in errors if _field_loc(tuple(e.get("loc", ()))) == loc]
    messages = list(dict.fromkeys(_message(e) for e in same))
    given = first.get("input")
    shown = repr(given)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"{where(prefix, loc)}: {' or '.join(messages)}; got {shown} ({type(given).__name__})"


def check_keys(data: Any, prefix: str) -> None:
    """Mapping keys are names: YAML's ``1: 2`` or ``true: x`` is no setting."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            if not isinstance(key, str):
                holder = where(prefix, ()) if prefix else "the settings"
                raise ConfigError(
                    f"{holder} have the key {key!r} ({type(key).__name__}); setting names are text"
                )
            check_keys(value, where(prefix, (key,)))


def validate(cls: type[T], data: Any, prefix: str = "") -> T:
    """An instance of the settings dataclass `cls` from a mapping, or a one-line ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{prefix or 'settings'} must be a mapping of keys to values, got {data!r} "
            f"({type(data).__name__})"
        )
    check_keys(data, prefix)
    try:
        return adapter_of(cls).validate_python(dict(data))
    except ValidationError as err:
        raise ConfigError(one_line(err, prefix, cls)) from None


def validate_value(kind: Any, value: Any, name: str) -> Any:
    """One value against a schema type (a flag's, a method option's)."""
    try:
        return adapter_of(kind).validate_python(value)
    except ValidationError as err:
        raise ConfigError(one_line(err, name)) from None


def settings(cls: type[T] | None = None, *, frozen: bool = False) -> Any:
    """A settings dataclass: pydantic-checked fields (`types.SETTINGS`), and construction or
    assignment in code raising the same one-line ConfigError as loading does."""
    if cls is None:
        return lambda c: settings(c, frozen=frozen)
    from pydantic.dataclasses import dataclass

    from .types import SETTINGS

    checked = dataclass(cls, config=SETTINGS, frozen=frozen)
    init, setattr_ = checked.__init__, checked.__setattr__

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as err:
            raise ConfigError(one_line(err, "", checked)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            setattr_(self, name, value)
        except ValidationError as err:
            raise ConfigError(one_line(err, "", checked)) from None

    __init__.__doc__ = init.__doc__
    checked.__init__ = __init__
    checked.__setattr__ = __setattr__
    return checked
