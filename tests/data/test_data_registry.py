"""Every registered dataset maps real rows of ../shared/data to the right examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blob_lora.data import (
    REGISTRY,
    ChoiceExample,
    TextExample,
    get_spec,
    load_examples,
    resolve_data_root,
)
from blob_lora.errors import ConfigError

ROOT = resolve_data_root().path
pytestmark = pytest.mark.skipif(ROOT is None, reason="benchmark data (../shared/data) not found")


def raw_rows(relative: str, n: int | None = 5) -> list[dict]:
    with (ROOT / relative).open() as f:
        rows = [json.loads(line) for line in f]
    return rows[:n] if n else rows


@pytest.mark.parametrize(
    ("name", "split", "path"),
    [
        ("arc-c", "train", "allenai/ai2_arc/ARC-Challenge/train.jsonl"),
        ("arc-c", "validation", "allenai/ai2_arc/ARC-Challenge/validation.jsonl"),
        ("arc-e", "test", "allenai/ai2_arc/ARC-Easy/test.jsonl"),
        ("obqa", "validation", "allenai/openbookqa/main/validation.jsonl"),
    ],
)
def test_arc_and_obqa_keys_by_position(name, split, path) -> None:
    rows = raw_rows(path, None)
    examples = load_examples(name, split)
    assert len(examples) == len(rows)
    for row, ex in zip(rows, examples, strict=True):
        assert ex.choices == row["choices"]["text"]
        assert ex.label == row["choices"]["label"].index(row["answerKey"])
        assert ex.question == row.get("question", row.get("question_stem"))
        assert ex.id == row["id"] and ex.answer_format == "letter"


def test_arc_digit_keys_and_three_or_five_choices() -> None:
    examples = {ex.id: ex for ex in load_examples("arc-c", "validation")}
    digit = examples["NYSEDREGENTS_2014_8_20"]  # labels 1-4, answerKey "2"
    three = examples["NYSEDREGENTS_2014_4_4"]  # A-C, answerKey "A"
    five = examples["TIMSS_2003_8_pg29"]  # A-E, answerKey "E"
    assert (len(digit.choices), digit.label) == (4, 1)
    assert (len(three.choices), three.label) == (3, 0)
    assert (len(five.choices), five.label) == (5, 4)
    sizes = {len(ex.choices) for ex in load_examples("arc-e", "train")}
    assert sizes == {3, 4, 5}


@pytest.mark.parametrize(
    ("name", "split", "path"),
    [
        ("wg-s", "train", "allenai/winogrande/winogrande_s/train.jsonl"),
        ("wg-m", "train", "allenai/winogrande/winogrande_m/train.jsonl"),
        ("wg-s", "validation", "allenai/winogrande/validation.jsonl"),
        ("wg-m", "validation", "allenai/winogrande/validation.jsonl"),
    ],
)
def test_winogrande_answer_one_two(name, split, path) -> None:
    rows = raw_rows(path)
    for row, ex in zip(rows, load_examples(name, split), strict=False):
        assert ex.choices == [row["option1"], row["option2"]]
        assert ex.label == int(row["answer"]) - 1
        assert ex.question.startswith(row["sentence"]) and "_" in ex.question
    assert len(load_examples("wg-s", "train")) == 640
    assert len(load_examples("wg-m", "train")) == 2558


def test_boolq_bool_answer() -> None:
    rows = raw_rows("google/boolq/validation.jsonl", 20)
    examples = load_examples("boolq", "validation")[:20]
    assert {row["answer"] for row in rows} == {True, False}
    for row, ex in zip(rows, examples, strict=True):
        assert isinstance(ex, ChoiceExample) and ex.answer_format == "word"
        assert ex.choices == ["no", "yes"] and ex.choices[ex.label] == (
            "yes" if row["answer"] else "no"
        )
        assert ex.question == row["question"] + "?" and ex.context == row["passage"]


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("mmlu-chem", "cais/mmlu/college_chemistry/test.jsonl"),
        ("mmlu-phys", "cais/mmlu/college_physics/test.jsonl"),
    ],
)
def test_mmlu_int_answer(name, path) -> None:
    rows = raw_rows(path)
    examples = load_examples(name, "test")
    assert len(examples) in (100, 102)
    for row, ex in zip(rows, examples, strict=False):
        assert (ex.question, ex.choices, ex.label) == (
            row["question"],
            row["choices"],
            row["answer"],
        )


@pytest.mark.parametrize(
    ("name", "split", "path"),
    [
        ("rte", "train", "glue/rte/train.jsonl"),
        ("rte", "validation", "glue/rte/validation.jsonl"),
        ("mrpc", "test", "glue/mrpc/test.jsonl"),
    ],
)
def test_glue_pairs(name, split, path) -> None:
    for row, ex in zip(raw_rows(path), load_examples(name, split), strict=False):
        assert isinstance(ex, TextExample)
        assert (ex.text, ex.text_pair, ex.label) == (
            row["sentence1"],
            row["sentence2"],
            row["label"],
        )


def test_registry_names_and_kinds() -> None:
    assert set(REGISTRY) >= {
        "wg-s", "wg-m", "arc-c", "arc-e", "obqa", "boolq",
        "rte", "mrpc", "cola", "wic", "sst2", "mmlu-chem", "mmlu-phys",
    }  # fmt: skip
    assert get_spec("ARC-C").kind == "choice" and get_spec("rte").kind == "classification"
    with pytest.raises(ConfigError, match="not known; known: wg-s"):
        get_spec("arc-x")


def test_limit_is_a_seeded_subset_in_file_order() -> None:
    full = load_examples("arc-e", "validation")
    a = load_examples("arc-e", "validation", limit=20, seed=1)
    assert a == load_examples("arc-e", "validation", limit=20, seed=1)
    assert a != load_examples("arc-e", "validation", limit=20, seed=2)
    positions = [full.index(ex) for ex in a]
    assert positions == sorted(positions) and len(a) == 20
    assert load_examples("arc-e", "validation", limit=10_000) == full


def test_every_local_file_converts() -> None:
    """No row of any local split is missing a field the registry expects."""
    for name in [
        "wg-s",
        "arc-c",
        "arc-e",
        "obqa",
        "boolq",
        "rte",
        "mrpc",
        "mmlu-chem",
        "mmlu-phys",
    ]:
        spec = get_spec(name)
        for folder in spec.local_folders:
            base = ROOT / folder / (spec.config or "")
            for path in sorted(Path(base).glob("*.jsonl")):
                assert load_examples(name, path.stem), (name, path)


def test_trec_reads_coarse_labels_and_serves_validation_from_test() -> None:
    raw = raw_rows("CogComp/trec/test.jsonl", n=None)
    examples = load_examples("trec", "validation")
    assert len(examples) == len(raw) == 500
    assert [(e.text, e.label) for e in examples[:5]] == [
        (r["text"], r["coarse_label"]) for r in raw[:5]
    ]
    assert {e.label for e in load_examples("trec", "train")} == set(range(6))


def test_ag_news_is_a_fixed_resplit_of_its_test_file() -> None:
    train, val = load_examples("ag-news", "train"), load_examples("ag-news", "validation")
    assert (len(train), len(val)) == (5320, 2280)
    raw = {r["text"] for r in raw_rows("fancyzhx/ag_news/test.jsonl", n=None)}
    assert {e.text for e in train} | {e.text for e in val} <= raw
    assert not {e.text for e in train} & {e.text for e in val}


@pytest.mark.parametrize("name", ["mrpc", "trec", "ag-news"])
def test_a_dev_carve_splits_the_training_data_and_never_touches_evaluation(name) -> None:
    spec = json.dumps({"name": name, "dev": 0.2})
    train, dev = load_examples(spec, "train"), load_examples(spec, "validation")
    full = load_examples(name, "train")
    assert len(train) + len(dev) == len(full)
    assert abs(len(dev) - 0.2 * len(full)) <= 1

    def key(e):
        return (e.text, e.text_pair, e.label)

    assert sorted(map(key, train + dev)) == sorted(map(key, full))
    # (no check against the evaluation split's texts: TREC itself repeats 10 test questions
    # in train; the dev rows are rows of the training file, which the line above shows)
    assert [key(e) for e in dev] == [key(e) for e in load_examples(spec, "validation")]  # fixed
    with pytest.raises(ConfigError, match="dev"):
        load_examples(json.dumps({"name": name, "dev": "a lot"}), "train")
