"""Rows -> generation examples (a source text and one or more reference targets).

A field mapping (data, not code) says which fields hold the source and the reference(s), so
DialogSum and a user's own JSONL go through the same path. Rows that share a source (the
DialogSum test split stores its 3 references as 3 rows) become one example with all their
references: ROUGE is then taken against every reference of an input.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..data.readers import read_rows
from ..data.roots import resolve_data_root
from ..errors import BlobLoraError, ConfigError

SOURCE_SLOT = "{source}"
DIALOGSUM_ID = "knkarthick/dialogsum"
DIALOGSUM_SPLITS = ("train", "validation", "test")


class GenerationDataError(BlobLoraError, ValueError):
    """A row cannot become a generation example; the message names file, row and field."""


@dataclass(frozen=True)
class GenerationExample:
    """One input and its reference outputs; ``template`` renders the prompt."""

    source: str
    references: tuple[str, ...]
    id: str | None = None
    template: str = SOURCE_SLOT

    @property
    def prompt(self) -> str:
        return render_prompt(self.template, self.source)


@dataclass(frozen=True)
class GenerationFields:
    """How a raw row becomes a `GenerationExample`.

    ``target``: a field holding a string or a list of strings, or a tuple of fields
    (``("summary1", "summary2", "summary3")``), each one reference. ``template`` holds
    ``{source}`` once; the rest is literal text (no other placeholders, no escaping), so a
    prompt can be cut inside the source and nowhere else. ``group_by_source`` merges rows
    with the same source text into one example whose references are all their targets.
    """

    source: str
    target: str | tuple[str, ...]
    template: str = SOURCE_SLOT
    id: str | None = None
    group_by_source: bool = True

    def __post_init__(self) -> None:
        if self.template.count(SOURCE_SLOT) != 1:
            raise ConfigError(
                f"prompt template {self.template!r} must contain {SOURCE_SLOT} exactly once"
            )
        if isinstance(self.target, list):
            object.__setattr__(self, "target", tuple(self.target))
        if not self.target:
            raise ConfigError("generation field mapping needs a target field")


DIALOGSUM_FIELDS = GenerationFields(
    source="dialogue", target="summary", template="Dialogue: {source}\nSummary:", id="id"
)


def render_prompt(template: str, source: str) -> str:
    """The template with the source in its one ``{source}`` slot."""
    prefix, suffix = split_template(template)
    return prefix + source + suffix


def split_template(template: str) -> tuple[str, str]:
    """(text before, text after) the ``{source}`` slot."""
    prefix, found, suffix = template.partition(SOURCE_SLOT)
    if not found or SOURCE_SLOT in suffix:
        raise ConfigError(f"prompt template {template!r} must contain {SOURCE_SLOT} exactly once")
    return prefix, suffix


def generation_fields_from_dict(mapping: Mapping[str, Any]) -> GenerationFields:
    """A mapping from its JSON/YAML form: ``{"source": ..., "target": ..., "template": ...}``."""
    known = {f.name for f in fields(GenerationFields)}
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ConfigError(
            f"unknown keys {unknown} in a generation field mapping; known: {sorted(known)}"
        )
    missing = [k for k in ("source", "target") if k not in mapping]
    if missing:
        raise ConfigError(f"generation field mapping is missing {missing}")
    data = dict(mapping)
    if isinstance(data["target"], list):
        data["target"] = tuple(data["target"])
    return GenerationFields(**data)


def _text(row: Mapping[str, Any], name: str, where: str) -> str:
    if name not in row or row[name] is None:
        raise GenerationDataError(
            f"{where}: field {name!r} is missing; its fields are {sorted(row)}"
        )
    value = row[name]
    if not isinstance(value, str):
        raise GenerationDataError(f"{where}: field {name!r} is {type(value).__name__}, not text")
    if not value.strip():
        raise GenerationDataError(f"{where}: field {name!r} is empty")
    return value


def _targets(row: Mapping[str, Any], spec: str | tuple[str, ...], where: str) -> list[str]:
    if isinstance(spec, tuple):
        return [_text(row, name, where) for name in spec]
    value = row.get(spec)
    if isinstance(value, Sequence) and not isinstance(value, str):
        if not value:
            raise GenerationDataError(f"{where}: field {spec!r} is an empty list of references")
        return [_text({spec: v}, spec, f"{where} reference {i}") for i, v in enumerate(value)]
    return [_text(row, spec, where)]


@dataclass
class _Group:
    source: str
    references: list[str] = field(default_factory=list)
    id: str | None = None


def examples_from_rows(
    rows: Iterable[Mapping[str, Any]], mapping: GenerationFields, origin: str = "rows"
) -> list[GenerationExample]:
    """Examples in first-seen order; errors say ``<origin> row <i> (0-based)``."""
    groups: dict[Any, _Group] = {}
    for i, row in enumerate(rows):
        where = f"{origin} row {i}"
        source = _text(row, mapping.source, where)
        targets = _targets(row, mapping.target, where)
        row_id = str(row[mapping.id]) if mapping.id and row.get(mapping.id) is not None else None
        if mapping.id and row_id is None:
            raise GenerationDataError(f"{where}: id field {mapping.id!r} is missing")
        key: Any = source if mapping.group_by_source else i
        group = groups.setdefault(key, _Group(source=source, id=row_id))
        group.references.extend(targets)
    if not groups:
        raise GenerationDataError(f"{origin} has no rows")
    return [
        GenerationExample(g.source, tuple(g.references), g.id, mapping.template)
        for g in groups.values()
    ]


def read_generation_examples(
    path: str | os.PathLike, mapping: GenerationFields, limit: int | None = None
) -> list[GenerationExample]:
    """Examples of a .jsonl/.json/.csv/.tsv file (read by the project's common reader).

    ``limit`` keeps the first examples (after grouping), enough for a fixed test subset.
    """
    examples = examples_from_rows(read_rows(path), mapping, origin=str(path))
    return examples if limit is None else examples[:limit]


def dialogsum_file(split: str, data_root: str | os.PathLike | None = None) -> Path:
    """The local DialogSum JSONL of ``split`` under the benchmark data root."""
    if split not in DIALOGSUM_SPLITS:
        raise ConfigError(f"DialogSum has no split {split!r}; use one of {DIALOGSUM_SPLITS}")
    root = resolve_data_root(data_root)
    if root.path is None:
        raise BlobLoraError(f"DialogSum needs the benchmark data folder: {root.describe()}")
    path = root.path / DIALOGSUM_ID / f"{split}.jsonl"
    if not path.is_file():
        raise BlobLoraError(f"DialogSum split {split!r} is not at {path}")
    return path


def load_dialogsum(
    split: str, limit: int | None = None, data_root: str | os.PathLike | None = None
) -> list[GenerationExample]:
    """DialogSum examples; on the test split each carries its 3 references."""
    return read_generation_examples(dialogsum_file(split, data_root), DIALOGSUM_FIELDS, limit)
