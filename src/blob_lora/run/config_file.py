"""A run's settings as a user writes them: a YAML file, then ``key=value`` overrides
(``adapter.key=value`` for a section), read into a checked `RunConfig`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .config import RunConfig


class _Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where `1e-4` (no dot) is a string; configs, saved run_config.json
    files and command-line values all write numbers that way, so here it is a float (YAML 1.2)."""


def _unique_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
    """A mapping whose keys are unique: a repeated key is an error, never the last one
    silently winning."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            repeated = key in seen
        except TypeError:  # an unhashable key (a list): the schema names it
            continue
        if repeated:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def parse_value(text: str, key: str | None = None) -> Any:
    """Command-line values are YAML scalars or lists: 3, 1e-4, true, [q_proj, v_proj]."""
    try:
        return _yaml(text)
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        shown = key if key and key.isprintable() else repr(key)
        name = f"{shown}=" if key else "value "
        raise ConfigError(
            f"{name}{text!r} is not valid YAML/JSON ({first}); quote strings and close "
            'brackets, e.g. eval_samples=[0,10] or dataset=\'{"path": "f.jsonl"}\''
        ) from err


def load_run_config(path: str | None, overrides: list[str] | None = None) -> RunConfig:
    """YAML file (optional) + `key=value` / `adapter.key=value` overrides."""
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = _yaml(p.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"config file {path} is not UTF-8 text (byte {err.object[err.start]:#x} at "
                f"offset {err.start}); save it as UTF-8"
            ) from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from err
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys to values")
        data.update(loaded)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        shown = key.strip() if key.strip().isprintable() else repr(key.strip())
        target = data
        *parents, leaf = key.strip().split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {item!r}: {parent!r} is not a section")
        if not value.strip():
            raise ConfigError(f"override {item!r} has no value; write {shown}=<value>")
        target[leaf] = parse_value(value, key.strip())
    return RunConfig.from_dict(data)
