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
        name = f"{key}=" if key else "value "
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
            loaded = _yaml(p.read_text()) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or type(err).__name__
            raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from err
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys to values")
        data.update(loaded)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        target = data
        *parents, leaf = key.strip().split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {item!r}: {parent} is not a section")
        if not value.strip():
            raise ConfigError(f"override {item!r} has no value; write {key.strip()}=<value>")
        target[leaf] = parse_value(value, key.strip())
    return RunConfig.from_dict(data)
