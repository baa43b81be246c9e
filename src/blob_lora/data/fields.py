"""Declarative field mappings: how a raw row becomes a normalized example.

Both the built-in registry and a user's own file are described this way (data, not code).
A mapping value is a field name, or - when it contains ``{`` - a template over the row's
fields, e.g. ``"Fill in the blank: {sentence}"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import BlobLoraError, ConfigError
from ..schema import settings, validate
from ..schema.types import FieldRef, Int, Name
from .examples import ChoiceExample, TextExample
from .generation_fields import GenerationFields

Row = Mapping[str, Any]


class _MissingField(KeyError):
    pass


class _Fields(dict):
    def __missing__(self, key: str) -> Any:
        raise _MissingField(key)


def _field_error(field: str, row: Row, where: str) -> BlobLoraError:
    return BlobLoraError(f"{where} has no field {field!r}; its fields are {sorted(row)}")


def _value(row: Row, spec: str, where: str) -> Any:
    """A field's value, or a template filled from the row."""
    if "{" in spec:
        try:
            return spec.format_map(_Fields(row))
        except _MissingField as e:
            raise _field_error(e.args[0], row, where) from None
    if spec not in row:
        raise _field_error(spec, row, where)
    return row[spec]


def _text(row: Row, spec: str, where: str) -> str:
    value = _value(row, spec, where)
    if not isinstance(value, str):
        raise BlobLoraError(f"{where}: field {spec!r} is {type(value).__name__}, not text")
    return value


def _int_label(raw: Any, label_map: Mapping[str, int] | None, spec: str, where: str) -> int:
    """Labels as data encode them: a label_map entry, a bool, an int or a digit string;
    never negative (classes are 0..K-1)."""
    value = _label_value(raw, label_map, spec, where)
    if value < 0:
        raise BlobLoraError(
            f"{where}: label {raw!r} of field {spec!r} is negative; classes are 0..K-1 "
            "(or give a label_map)"
        )
    return value


def _label_value(raw: Any, label_map: Mapping[str, int] | None, spec: str, where: str) -> int:
    if label_map is not None:
        keys = [str(raw)] + ([str(raw).lower()] if isinstance(raw, bool) else [])
        for key in keys:
            if key in label_map:
                return int(label_map[key])
        raise BlobLoraError(
            f"{where}: label {raw!r} of field {spec!r} is not in label_map {dict(label_map)}"
        )
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw)
    raise BlobLoraError(
        f"{where}: label {raw!r} of field {spec!r} is not an integer; give a label_map"
    )


@settings(frozen=True)
class ChoiceFields:
    """Fields of a multiple-choice row.

    ``choices`` names a field holding a list of strings or a ``{text, label}`` record
    (ARC/OBQA: the answer key is then mapped by its position in ``label``), or a list of
    fields (WinoGrande: ``["option1", "option2"]``). ``choice_words`` instead fixes the
    choices for every row and makes the model answer with those words (BoolQ: no/yes).
    """

    question: FieldRef
    label: FieldRef
    choices: FieldRef | tuple[FieldRef, ...] | None = None
    choice_words: tuple[Name, ...] | None = None
    context: FieldRef | None = None
    id: FieldRef | None = None
    label_map: dict[Name, Int] | None = None

    kind = "choice"

    def __post_init__(self) -> None:
        if (self.choices is None) == (self.choice_words is None):
            raise ConfigError("a choice mapping needs exactly one of 'choices', 'choice_words'")

    def convert(self, row: Row, where: str) -> ChoiceExample:
        choices, keys = self._choices(row, where)
        raw = _value(row, self.label, where)
        if keys is not None and self.label_map is None and isinstance(raw, str):
            if raw not in keys:
                raise BlobLoraError(f"{where}: answer key {raw!r} is not one of {keys}")
            label = keys.index(raw)
        else:
            label = _int_label(raw, self.label_map, self.label, where)
        if not 0 <= label < len(choices):
            raise BlobLoraError(
                f"{where}: label {label} (field {self.label!r}) is out of range for "
                f"{len(choices)} choices"
            )
        return ChoiceExample(
            question=_text(row, self.question, where),
            choices=choices,
            label=label,
            context=_text(row, self.context, where) if self.context else None,
            id=str(_value(row, self.id, where)) if self.id else None,
            answer_format="word" if self.choice_words else "letter",
        )

    def _choices(self, row: Row, where: str) -> tuple[list[str], list[str] | None]:
        """(choice texts, answer keys by position or None)."""
        if self.choice_words is not None:
            return list(self.choice_words), None
        if not isinstance(self.choices, str):
            return [_text(row, f, where) for f in self.choices], None
        value = _value(row, self.choices, where)
        if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
            try:
                value = json.loads(value)  # a CSV cell holding a JSON list
            except json.JSONDecodeError as err:
                raise BlobLoraError(
                    f"{where}: field {self.choices!r} holds {value!r}, which is not a JSON list "
                    f'({err.msg}); quote every choice, e.g. ["yes", "no"]'
                ) from None
        if isinstance(value, Mapping):
            if "text" not in value:
                raise _field_error(f"{self.choices}.text", value, where)
            keys = [str(k) for k in value.get("label", [])] or None
            texts = list(value["text"])
            if keys is not None and len(keys) != len(texts):
                raise BlobLoraError(f"{where}: {len(texts)} choice texts but {len(keys)} keys")
            return texts, keys
        if isinstance(value, Sequence) and not isinstance(value, str):
            return [str(v) for v in value], None
        raise BlobLoraError(f"{where}: field {self.choices!r} is not a list of choices")


@settings(frozen=True)
class TextFields:
    """Fields of a sequence-classification row: a text, an optional second text, a label."""

    text: FieldRef
    label: FieldRef
    text_pair: FieldRef | None = None
    id: FieldRef | None = None
    label_map: dict[Name, Int] | None = None

    kind = "classification"

    def convert(self, row: Row, where: str) -> TextExample:
        return TextExample(
            text=_text(row, self.text, where),
            text_pair=_text(row, self.text_pair, where) if self.text_pair else None,
            label=_int_label(_value(row, self.label, where), self.label_map, self.label, where),
            id=str(_value(row, self.id, where)) if self.id else None,
        )


Fields = ChoiceFields | TextFields | GenerationFields
TASK_KINDS = {"choice": ChoiceFields, "classification": TextFields, "generate": GenerationFields}


def fields_from_dict(mapping: Mapping[str, Any], where: str = "dataset") -> Fields:
    """A mapping from its JSON form: ``task`` ("choice", "classification" or "generate")
    plus fields (generation: ``source``, ``target``, optional ``template`` and ``id``)."""
    mapping = dict(mapping)
    kind = mapping.pop("task", None)
    if kind is None:
        kind = "choice" if ("choices" in mapping or "choice_words" in mapping) else None
        kind = kind or ("classification" if "text" in mapping else None)
        kind = kind or ("generate" if "source" in mapping else None)
    if not isinstance(kind, str) or kind not in TASK_KINDS:
        raise ConfigError(
            f"{where} field mapping needs 'task': one of {sorted(TASK_KINDS)} (got {kind!r})"
        )
    return validate(TASK_KINDS[kind], mapping, where)
