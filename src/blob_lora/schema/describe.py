"""Words for a schema type, so `blob config` and `--help` say what the checks check."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import Strict
from pydantic.fields import FieldInfo


def _bounds(metadata: list[Any]) -> str:
    low = high = ""
    for m in metadata:
        items = m.metadata if isinstance(m, FieldInfo) else [m]
        for item in items:
            if isinstance(item, Ge):
                low = f">= {item.ge}"
            elif isinstance(item, Gt):
                low = f"> {item.gt}"
            elif isinstance(item, Le):
                high = f"<= {item.le}"
            elif isinstance(item, Lt):
                high = f"< {_number(item.lt)}"
    return " and ".join(b for b in (low, high) if b)


def _number(value: Any) -> str:
    return "2**32" if value == 2**32 else str(value)


def type_text(tp: Any) -> str:
    """``Annotated[int, Strict(), Field(ge=1)]`` -> ``int >= 1``; Literal -> a | b."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        base, *meta = args
        meta = [m for m in meta if not isinstance(m, Strict)]
        bounds = _bounds(meta)
        text = type_text(base)
        if text == "str":
            text = "plain name" if "pattern" in repr(meta) else "text"
        return f"{text} {bounds}".strip()
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [type_text(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return f"{text} or null" if type(None) in args else text
    if origin in (list, tuple):
        return f"list of {type_text(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping {type_text(args[0])} -> {type_text(args[1])}" if args else "mapping"
    if dataclasses.is_dataclass(tp):
        return "section"
    return getattr(tp, "__name__", str(tp))


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def describe(cls: type, prefix: str = "", defaults: Any = None) -> list[tuple[str, str, Any, str]]:
    """(key, type, default, help) of every field, nested sections flattened; a section's
    defaults are those of the instance its owner makes (`defaults`), not its class's."""
    hints = typing.get_type_hints(cls, include_extras=True)
    rows = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        default = getattr(defaults, f.name) if defaults is not None else default_of(f)
        if dataclasses.is_dataclass(tp):
            rows += describe(tp, f"{prefix}{f.name}.", defaults=default)
            continue
        rows.append((prefix + f.name, type_text(tp), default, f.metadata.get("help", "")))
    return rows
