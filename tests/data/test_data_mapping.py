"""A user's own JSONL / CSV files through a declarative field mapping."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from blob_lora.data import ChoiceExample, TextExample, load_examples, load_split
from blob_lora.errors import BlobLoraError, ConfigError


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_jsonl_choice_mapping(tmp_path) -> None:
    path = write_jsonl(
        tmp_path / "my.jsonl",
        [
            {"q": "2+2?", "opts": ["3", "4"], "gold": 1},
            {"q": "1+1?", "opts": ["2", "5", "7"], "gold": 0},
        ],
    )
    spec = {
        "path": str(path),
        "task": "choice",
        "question": "q",
        "choices": "opts",
        "label": "gold",
    }
    examples = load_examples(spec, "validation")
    assert examples == [
        ChoiceExample("2+2?", ["3", "4"], 1),
        ChoiceExample("1+1?", ["2", "5", "7"], 0),
    ]
    assert load_examples(json.dumps(spec), "train") == examples  # the CLI's JSON form
    assert load_split(spec, "train").dataset == "my"


def test_csv_choice_columns_label_map_and_template(tmp_path) -> None:
    path = write_csv(
        tmp_path / "quiz.csv",
        [
            {"stem": "Sky colour", "a": "blue", "b": "red", "key": "a", "src": "x1"},
            {"stem": "Grass colour", "a": "pink", "b": "green", "key": "b", "src": "x2"},
        ],
    )
    spec = {
        "path": str(path),
        "question": "{stem}?",
        "choices": ["a", "b"],
        "label": "key",
        "label_map": {"a": 0, "b": 1},
        "id": "src",
    }
    examples = load_examples(spec, "test")
    assert [(e.question, e.choices, e.label, e.id) for e in examples] == [
        ("Sky colour?", ["blue", "red"], 0, "x1"),
        ("Grass colour?", ["pink", "green"], 1, "x2"),
    ]


def test_csv_classification_pairs_per_split(tmp_path) -> None:
    rows = {
        "train": [
            {"s1": "a cat", "s2": "an animal", "y": "yes"},
            {"s1": "a car", "s2": "a fruit", "y": "no"},
        ],
        "dev": [{"s1": "a dog", "s2": "an animal", "y": "yes"}],
    }
    for split, split_rows in rows.items():
        write_csv(tmp_path / f"pairs_{split}.csv", split_rows)
    spec = {
        "paths": {
            "train": str(tmp_path / "pairs_{split}.csv"),
            "validation": str(tmp_path / "pairs_dev.csv"),
        },
        "task": "classification",
        "text": "s1",
        "text_pair": "s2",
        "label": "y",
        "label_map": {"yes": 1, "no": 0},
    }
    assert load_examples(spec, "train") == [
        TextExample("a cat", "an animal", 1),
        TextExample("a car", "a fruit", 0),
    ]
    assert load_examples(spec, "validation") == [TextExample("a dog", "an animal", 1)]
    with pytest.raises(BlobLoraError, match="no split 'test'"):
        load_examples(spec, "test")


def test_fixed_choice_words_and_resplit_of_a_user_file(tmp_path) -> None:
    rows = [
        {"question": f"is {i} even", "passage": f"{i}", "answer": i % 2 == 0} for i in range(10)
    ]
    path = write_jsonl(tmp_path / "yn.jsonl", rows)
    spec = {
        "path": str(path),
        "question": "{question}?",
        "context": "passage",
        "label": "answer",
        "choice_words": ["no", "yes"],
        "resplit": {"source": "all", "eval_fraction": 0.3},
    }
    train = load_examples(spec, "train")
    valid = load_examples(spec, "validation")
    assert len(train) == 7 and len(valid) == 3
    assert all(e.answer_format == "word" and e.choices == ["no", "yes"] for e in train)
    assert {e.question for e in train + valid} == {f"is {i} even?" for i in range(10)}


def test_mapping_errors(tmp_path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{"q": "x", "opts": ["a", "b"], "gold": 5}])
    base = {"path": str(path), "task": "choice", "question": "q", "choices": "opts"}
    with pytest.raises(BlobLoraError, match=r"bad.jsonl\) line 1 has no field 'answer'"):
        load_examples({**base, "label": "answer"}, "train")
    with pytest.raises(BlobLoraError, match="out of range for 2 choices"):
        load_examples({**base, "label": "gold"}, "train")
    with pytest.raises(ConfigError, match=r"unknown config key 'dataset.lable'"):
        load_examples({**base, "lable": "gold"}, "train")
    with pytest.raises(ConfigError, match="missing"):
        load_examples({"path": str(path), "task": "choice", "choices": "opts"}, "train")
    with pytest.raises(BlobLoraError, match="does not exist"):
        load_examples({**base, "label": "gold", "path": str(tmp_path / "none.jsonl")}, "train")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_examples('{"path": ', "train")
    good = write_jsonl(tmp_path / "good.jsonl", [{"q": "x", "opts": ["a", "b"], "gold": 1}])
    with pytest.raises(BlobLoraError, match="line 1 has no field 'missing'"):
        load_examples(
            {**base, "path": str(good), "label": "gold", "question": "{missing}"}, "train"
        )
