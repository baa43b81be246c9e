"""Rows -> generation examples: DialogSum's 3 references per test dialogue, a user's own
JSONL through a field mapping, and one-line errors naming file, row and field."""

from __future__ import annotations

import json

import pytest

from blob_lora.data import resolve_data_root
from blob_lora.errors import BlobLoraError, ConfigError
from blob_lora.generation import (
    GenerationDataError,
    GenerationExample,
    GenerationFields,
    examples_from_rows,
    generation_fields_from_dict,
    load_dialogsum,
    read_generation_examples,
)

needs_data = pytest.mark.skipif(resolve_data_root().path is None, reason="no benchmark data")


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@needs_data
def test_dialogsum_test_has_three_references_per_dialogue():
    examples = load_dialogsum("test")
    assert len(examples) == 500 and all(len(ex.references) == 3 for ex in examples)
    first = examples[0]
    assert first.id == "test_0_1" and first.prompt.startswith("Dialogue: #Person1#")
    assert first.prompt.endswith("\nSummary:")
    assert len(load_dialogsum("validation", limit=5)) == 5


def test_user_jsonl_with_list_or_several_target_fields(tmp_path):
    rows = [
        {"doc": "a long text", "refs": ["one", "two"], "key": 1},
        {"doc": "another text", "refs": ["three"], "key": 2},
    ]
    mapping = generation_fields_from_dict(
        {"source": "doc", "target": "refs", "template": "Text: {source}\nTL;DR:", "id": "key"}
    )
    examples = read_generation_examples(_jsonl(tmp_path / "mine.jsonl", rows), mapping)
    assert examples[0] == GenerationExample("a long text", ("one", "two"), "1", mapping.template)
    assert examples[1].prompt == "Text: another text\nTL;DR:"
    wide = [{"d": "x", "s1": "a", "s2": "b", "s3": "c"}]
    ex = examples_from_rows(wide, GenerationFields("d", ("s1", "s2", "s3")))
    assert ex[0].references == ("a", "b", "c")


def test_rows_with_the_same_source_are_grouped_unless_asked_not_to():
    rows = [{"d": "x", "s": "a"}, {"d": "y", "s": "b"}, {"d": "x", "s": "c"}]
    grouped = examples_from_rows(rows, GenerationFields("d", "s"))
    assert [(e.source, e.references) for e in grouped] == [("x", ("a", "c")), ("y", ("b",))]
    single = examples_from_rows(rows, GenerationFields("d", "s", group_by_source=False))
    assert len(single) == 3


@pytest.mark.parametrize(
    "row,match",
    [
        ({"doc": "text"}, r"mine.jsonl line 2: field 'summary' is missing"),
        ({"doc": "text", "summary": "  "}, r"mine.jsonl line 2: field 'summary' is empty"),
        ({"summary": "s"}, r"mine.jsonl line 2: field 'doc' is missing"),
        ({"doc": "text", "summary": 3}, r"line 2: field 'summary' is int, not text"),
        ({"doc": "text", "summary": []}, r"line 2: field 'summary' is an empty list"),
    ],
)
def test_missing_or_empty_fields_name_file_row_and_field(tmp_path, row, match):
    path = _jsonl(tmp_path / "mine.jsonl", [{"doc": "ok", "summary": "fine"}, row])
    with pytest.raises(GenerationDataError, match=match) as info:
        read_generation_examples(path, GenerationFields("doc", "summary"))
    assert isinstance(info.value, ValueError) and isinstance(info.value, BlobLoraError)
    assert "\n" not in str(info.value)


def test_bad_mappings():
    with pytest.raises(ConfigError, match="exactly once"):
        GenerationFields("d", "s", template="no slot")
    with pytest.raises(ConfigError, match="unknown config key .dataset.prompt."):
        generation_fields_from_dict({"source": "d", "target": "s", "prompt": "x"})
    with pytest.raises(ConfigError, match="missing"):
        generation_fields_from_dict({"source": "d"})
