"""Prompts, answer tokens and truncation of the multiple-choice task on real rows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_bpe import tiny_bpe
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from blob_lora.data import ChoiceExample, TextExample, load_examples, resolve_data_root
from blob_lora.errors import BlobLoraError, ConfigError
from blob_lora.tasks import MultipleChoiceTask, format_prompt

needs_data = pytest.mark.skipif(
    resolve_data_root().path is None, reason="benchmark data (../shared/data) not found"
)


def by_id(name: str, split: str, example_id: str) -> ChoiceExample:
    return next(ex for ex in load_examples(name, split) if ex.id == example_id)


@needs_data
def test_arc_digit_keys_prompt_letters_in_choice_order() -> None:
    ex = by_id("arc-c", "validation", "NYSEDREGENTS_2014_8_20")  # keys 1-4, answer "2"
    prompt = format_prompt(ex).text
    lines = prompt.splitlines()
    assert lines[0] == f"Question: {ex.question}"
    assert lines[1:5] == [f"{k}. {c}" for k, c in zip("ABCD", ex.choices, strict=True)]
    assert lines[-1] == "Answer:" and ex.label == 1


@needs_data
@pytest.mark.parametrize(
    ("example_id", "n", "label"),
    [("NYSEDREGENTS_2014_4_4", 3, 0), ("TIMSS_2003_8_pg29", 5, 4)],
)
def test_arc_three_and_five_choices(example_id, n, label) -> None:
    ex = by_id("arc-c", "validation", example_id)
    assert (len(ex.choices), ex.label) == (n, label)
    letters = [line.split(".")[0] for line in format_prompt(ex).text.splitlines()[1:-1]]
    assert letters == list("ABCDE"[:n])


@needs_data
def test_every_choice_dataset_prompt_and_answer_tokens() -> None:
    tok = tiny_bpe()
    task = MultipleChoiceTask(tok, max_length=512)
    for name, split in [
        ("wg-s", "train"),
        ("wg-m", "validation"),
        ("arc-c", "train"),
        ("arc-e", "validation"),
        ("obqa", "train"),
        ("boolq", "validation"),
        ("mmlu-chem", "test"),
        ("mmlu-phys", "test"),
    ]:
        examples = load_examples(name, split)[:4]
        batch = task.collate(examples)
        assert batch["labels"].tolist() == [ex.label for ex in examples], name
        for row, ex in enumerate(examples):
            text = tok.decode(batch["input_ids"][row][batch["attention_mask"][row].bool()])
            assert text.endswith("\nAnswer:"), name
            assert ex.question in text, name
        words = ["no", "yes"] if name == "boolq" else list("ABCDE"[: batch["answer_ids"].numel()])
        assert batch["answer_ids"].tolist() == task.answer_ids(words), name


@needs_data
def test_winogrande_and_boolq_prompts() -> None:
    wg = load_examples("wg-s", "validation")[0]
    assert format_prompt(wg).text == (
        "Question: Sarah was a much better surgeon than Maria so _ always got the easier "
        "cases.\nWhich option best fills the blank (_)?\nA. Sarah\nB. Maria\nAnswer:"
    )
    assert wg.label == 1
    bq = load_examples("boolq", "validation")[0]
    prompt = format_prompt(bq)
    assert prompt.text.startswith("Passage: Ethanol fuel -- All biomass")
    assert prompt.text.endswith(
        "\nQuestion: does ethanol take more energy make that produces?\nAnswer:"
    )
    assert prompt.text[slice(*prompt.context_span)] == bq.context
    assert (bq.choices, bq.label) == (["no", "yes"], 0)


@needs_data
@pytest.mark.parametrize(
    ("name", "gold_word"),  # RTE: label 0 = entailment; MRPC: label 1 = equivalent
    [("rte-qa", {0: "yes", 1: "no"}), ("mrpc-qa", {0: "no", 1: "yes"})],
)
def test_glue_pairs_posed_as_yes_no_questions(name: str, gold_word: dict[int, str]) -> None:
    raw = {"rte-qa": "rte", "mrpc-qa": "mrpc"}[name]
    pairs = load_examples(raw, "validation")
    questions = load_examples(name, "validation")
    assert len(pairs) == len(questions)
    for pair, question in zip(pairs, questions, strict=True):
        assert question.choices[question.label] == gold_word[pair.label]
        assert question.answer_format == "word" and sorted(question.choices) == ["no", "yes"]
    text = format_prompt(questions[0]).text
    assert pairs[0].text in text and pairs[0].text_pair in text
    assert text.endswith("?\nAnswer:")


def test_truncation_keeps_question_end_and_cuts_passage_from_the_left() -> None:
    tok = tiny_bpe(bos=True)
    passage = " ".join(f"word{i}" for i in range(200))
    ex = ChoiceExample(
        "is the river north?", ["no", "yes"], 1, context=passage, answer_format="word"
    )
    full = MultipleChoiceTask(tok, max_length=4096).collate([ex])["input_ids"][0]
    cut = MultipleChoiceTask(tok, max_length=60).collate([ex])["input_ids"][0]
    assert len(cut) == 60 and len(full) > 60
    assert cut[0].item() == tok.bos_token_id
    text = tok.decode(cut[1:])
    assert text.startswith("Passage: ") and "word0 " not in text and "word199" in text
    assert text.endswith("\nQuestion: is the river north?\nAnswer:")
    tiny = MultipleChoiceTask(tok, max_length=8).collate([ex])["input_ids"][0]
    assert len(tiny) == 8 and tok.decode(tiny[1:]).endswith("Answer:")


def test_multi_token_answer_is_an_error() -> None:
    wl = Tokenizer(models.WordLevel({"[UNK]": 0, "Answer": 1, ":": 2, "A": 3}, unk_token="[UNK]"))
    wl.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=wl, unk_token="[UNK]", pad_token="[UNK]")
    task = MultipleChoiceTask(tok)
    assert task.answer_ids(["A"]) == [3]
    bpe = tiny_bpe()
    ex = ChoiceExample("q?", ["maybe not", "perhaps"], 0, answer_format="word")
    with pytest.raises(ConfigError, match="not one token"):
        MultipleChoiceTask(bpe).collate([ex])


def test_mixed_answer_vocabularies_and_text_examples_are_errors() -> None:
    task = MultipleChoiceTask(tiny_bpe())
    letter = ChoiceExample("q?", ["a", "b"], 0)
    word = ChoiceExample("q?", ["no", "yes"], 0, context="p", answer_format="word")
    with pytest.raises(BlobLoraError, match="one answer vocabulary"):
        task.collate([letter, word])
    with pytest.raises(BlobLoraError, match="task=classification"):
        task.collate([TextExample("a", "b", 1)])


def _gemma_folder() -> Path:
    root = os.environ.get("BLOB_LORA_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "blob_lora"
    return base / "models" / "gemma-270m"


@pytest.mark.skipif(
    not (_gemma_folder() / "tokenizer.json").exists(), reason="converted Gemma not present"
)
def test_gemma_tokenizer_answers_are_single_tokens() -> None:
    # tokenizer.json directly: 4 s instead of AutoTokenizer's 8 s for the 262k vocabulary
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_file(str(_gemma_folder() / "tokenizer.json")),
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
    )
    task = MultipleChoiceTask(tok)
    ids = task.answer_ids(list("ABCDE") + ["no", "yes"])
    assert tok.convert_ids_to_tokens(ids) == ["▁A", "▁B", "▁C", "▁D", "▁E", "▁no", "▁yes"]
    batch = task.collate(
        [ChoiceExample("Is it?", ["no", "yes"], 1, context="P", answer_format="word")]
    )
    assert batch["input_ids"][0, 0].item() == tok.bos_token_id
