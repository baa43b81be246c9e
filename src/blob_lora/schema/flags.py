"""Command-line flags from a settings dataclass: the flag, its help and its checks come
from the field, so `--help` and the validation cannot drift apart."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from ..errors import ConfigError
from .describe import type_text
from .validate import adapter_of, check_keys, one_line

T = TypeVar("T")


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _base(tp: Any) -> Any:
    """The Python type argparse should convert a flag's text to."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _base(args[0])
    if origin is Literal:
        return type(args[0])
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _base(inner[0])
    return tp


def _converter(tp: Any) -> Any:
    """Flag text to the field's type (argparse's one-line error when it is not one); the
    schema then checks the range."""
    kind = _base(tp)
    if kind not in (int, float):
        return str
    words = "a whole number" if kind is int else "a number"

    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {words}") from None

    return convert


def _is_list(tp: Any) -> tuple[bool, Any]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _is_list(args[0])
    if origin in (typing.Union, types.UnionType):
        for a in args:
            found, inner = _is_list(a)
            if found:
                return found, inner
    if origin is list:
        return True, args[0]
    return False, None


def add_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
) -> None:
    """One flag per field of `cls` (positional where the field's metadata says so)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        tp, meta = hints[f.name], f.metadata
        help_text = meta.get("help", "")
        listed, item = _is_list(tp)
        shown = type_text(item if listed else tp).removesuffix(" or null")  # unset: default
        if _base(tp) is bool:
            parser.add_argument(
                flag_name(f.name), action="store_true", default=None, help=help_text
            )
            continue
        kwargs: dict[str, Any] = {"help": f"{help_text} [{shown}]" if help_text else f"[{shown}]"}
        kwargs["type"] = _converter(item if listed else tp)
        if listed:
            kwargs["nargs"] = "+"
        literal = _literal(tp)
        if literal:
            kwargs["choices"] = literal
            kwargs["help"] = help_text
        if meta.get("positional"):
            parser.add_argument(f.name, **kwargs)
        else:
            parser.add_argument(flag_name(f.name), default=None, **kwargs)


def _literal(tp: Any) -> tuple[Any, ...]:
    """The allowed values of a Literal flag (optional or not), else ()."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return args
    if origin in (typing.Union, types.UnionType):
        for a in args:
            if _literal(a):
                return _literal(a)
    return ()


def read_flags(cls: type[T], args: argparse.Namespace) -> T:
    """The flags given (None: not given, the field's default) as a checked `cls` (a
    settings dataclass); an error names the flag as the user typed it."""
    names = {f.name for f in dataclasses.fields(cls)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    check_keys(given, "")
    try:
        return adapter_of(cls).validate_python(given)
    except ValidationError as err:
        raise ConfigError(_flag_line(err, cls)) from None


def _flag_line(err: ValidationError, cls: type) -> str:
    """pydantic's finding with the field named as given: ``--max-new-tokens``, or a
    positional's own name."""
    line = one_line(err)
    loc = err.errors(include_url=False)[0].get("loc", ())
    if loc and isinstance(loc[0], str):
        field = cls.__dataclass_fields__.get(loc[0])
        positional = field is not None and field.metadata.get("positional")
        line = line.replace(loc[0], loc[0] if positional else flag_name(loc[0]), 1)
    return line
