"""Rows -> generation examples (a source text and one or more reference targets).

A field mapping (data, not code) says which fields hold the source and the reference(s), so
DialogSum and a user's own JSONL go through the same path as every other dataset. Rows that
share a source (the DialogSum test split stores its 3 references as 3 rows) become one
example with all their references: ROUGE is then taken against every reference of an input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BlobLoraError, ConfigError
from ..schema import settings, validate
from ..schema.types import Bool, Name, Text
from .examples import SOURCE_SLOT, GenerationExample


class GenerationDataError(BlobLoraError, ValueError):
    """A row cannot become a generation example; the message names file, row and field."""


@settings(frozen=True)
class GenerationFields:
    """How a raw row becomes a `GenerationExample`.

    ``target``: a field holding a string or a list of strings, or a tuple of fields
    (``("summary1", "summary2", "summary3")``), each one reference. ``template`` holds
    ``{source}`` once; the rest is literal text (no other placeholders, no escaping), so a
    prompt can be cut inside the source and nowhere else. ``group_by_source`` merges rows
    with the same source text into one example whose references are all their targets.
    """

    source: Name
    target: Name | tuple[Name, ...]
    template: Text = SOURCE_SLOT
    id: Name | None = None
    group_by_source: Bool = True

    kind = "generate"

    def __post_init__(self) -> None:
        if self.template.count(SOURCE_SLOT) != 1:
            raise ConfigError(
                f"prompt template {self.template!r} must contain {SOURCE_SLOT} exactly once"
            )
        if not self.target:
            raise ConfigError("generation field mapping needs a target field")

    def convert(self, row: Mapping[str, Any], where: str) -> GenerationExample:
        """One row as an example with the references of that row alone (see `group`)."""
        source = _text(row, self.source, where)
        targets = _targets(row, self.target, where)
        row_id = str(row[self.id]) if self.id and row.get(self.id) is not None else None
        if self.id and row_id is None:
            raise GenerationDataError(f"{where}: id field {self.id!r} is missing")
        return GenerationExample(source, tuple(targets), row_id, self.template)


DIALOGSUM_FIELDS = GenerationFields(
    source="dialogue", target="summary", template="Dialogue: {source}\nSummary:", id="id"
)


def generation_fields_from_dict(
    mapping: Mapping[str, Any], where: str = "dataset"
) -> GenerationFields:
    """A mapping from its JSON/YAML form: ``{"source": ..., "target": ..., "template": ...}``."""
    return validate(GenerationFields, mapping, where)


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
    first: GenerationExample
    references: list[str] = field(default_factory=list)


def group_by_source(examples: Iterable[GenerationExample]) -> list[GenerationExample]:
    """Examples with the same source text merged into one (first-seen order, first id),
    holding the references of all of them."""
    groups: dict[str, _Group] = {}
    for ex in examples:
        groups.setdefault(ex.source, _Group(ex)).references.extend(ex.references)
    return [
        GenerationExample(g.first.source, tuple(g.references), g.first.id, g.first.template)
        for g in groups.values()
    ]


def examples_from_rows(
    rows: Iterable[Mapping[str, Any]], mapping: GenerationFields, origin: str = "rows"
) -> list[GenerationExample]:
    """Examples in first-seen order; errors name the file line of a .jsonl row (from 1),
    else ``row <i> (from 0)``."""
    lines = getattr(rows, "lines", None)
    examples = [
        mapping.convert(row, f"{origin} " + (f"line {lines[i]}" if lines else f"row {i} (from 0)"))
        for i, row in enumerate(rows)
    ]
    if not examples:
        raise GenerationDataError(f"{origin} has no rows")
    return group_by_source(examples) if mapping.group_by_source else examples
