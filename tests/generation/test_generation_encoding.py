"""Encoding for training: prompt and padding masked, source-only truncation, and the loss
of a tiny model equal to the NLL of the target tokens computed by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from gen_tiny import bart_tokenizer, llama_tokenizer, t5_tokenizer, tiny_t5
from tiny_models import tiny_bart, tiny_llama

from blob_lora.generation import (
    IGNORE_INDEX,
    EncodingConfig,
    GenerationDataError,
    GenerationExample,
    collate,
    encode_examples,
    encode_pair,
    prompt_batch,
)

TEMPLATE = "dialogue : {source} summary :"
# word ids of the llama tokenizer: <pad> 0, </s> 1, <s> 2, dialogue 4, summary 5, ":" 6,
# hello 12, hi 13, the 14, cat 16, dog 17, sat 18
LONG = GenerationExample("hello the cat", ("cat sat", "dog"), "long", TEMPLATE)
SHORT = GenerationExample("hi", ("dog sat",), "short", TEMPLATE)


def test_causal_pair_masks_the_prompt_and_ends_with_eos():
    enc = encode_pair(LONG, "cat sat", llama_tokenizer(), EncodingConfig(), encoder_decoder=False)
    assert enc.input_ids == [2, 4, 6, 12, 14, 16, 5, 6, 16, 18, 1]
    assert enc.labels == [IGNORE_INDEX] * 8 + [16, 18, 1]
    assert not enc.truncated_source and not enc.truncated_target


def test_every_reference_becomes_a_training_pair():
    pairs = encode_examples(
        [LONG, SHORT], llama_tokenizer(), EncodingConfig(), encoder_decoder=False
    )
    assert [p.id for p in pairs] == ["long", "long", "short"]
    assert [p.labels[-2] for p in pairs] == [18, 17, 18]


def test_only_the_end_of_the_source_is_cut():
    tok = llama_tokenizer()
    enc = encode_pair(LONG, "cat sat", tok, EncodingConfig(max_length=9), encoder_decoder=False)
    assert enc.input_ids == [2, 4, 6, 12, 5, 6, 16, 18, 1]  # "the cat" dropped, target whole
    assert enc.truncated_source
    with pytest.raises(GenerationDataError, match="'long' does not fit.*template"):
        encode_pair(LONG, "cat sat", tok, EncodingConfig(max_length=8), encoder_decoder=False)
    with pytest.raises(GenerationDataError, match="truncate_source is off"):
        cfg = EncodingConfig(max_length=9, truncate_source=False)
        encode_pair(LONG, "cat sat", tok, cfg, encoder_decoder=False)
    with pytest.raises(GenerationDataError, match="target takes 3 tokens"):
        encode_pair(LONG, "cat sat", tok, EncodingConfig(max_length=3), encoder_decoder=False)
    capped = encode_pair(
        LONG, "cat sat", tok, EncodingConfig(max_target_length=1), encoder_decoder=False
    )
    assert capped.labels[-1] == 16 and capped.truncated_target  # explicit cap only


@pytest.mark.parametrize("side", ["left", "right"])
def test_collate_masks_padding(side):
    tok = llama_tokenizer()
    pairs = [
        encode_pair(ex, ex.references[0], tok, EncodingConfig(), encoder_decoder=False)
        for ex in (LONG, SHORT)
    ]
    batch = collate(pairs, 0, encoder_decoder=False, padding_side=side)
    short_len = len(pairs[1].input_ids)
    pad = batch["input_ids"].shape[1] - short_len
    assert pad > 0
    real = slice(pad, None) if side == "left" else slice(0, short_len)
    padded = slice(0, pad) if side == "left" else slice(short_len, None)
    assert batch["input_ids"][1, real].tolist() == pairs[1].input_ids
    assert batch["labels"][1, real].tolist() == pairs[1].labels
    assert (batch["labels"][1, padded] == IGNORE_INDEX).all()
    assert (batch["attention_mask"][1, padded] == 0).all()
    assert batch["position_ids"][1, real].tolist() == list(range(short_len))


def _hand_nll(logits: torch.Tensor, targets: list[list[tuple[int, int]]]) -> torch.Tensor:
    """Mean over (row, position, token) of -log p(token | logits at position)."""
    logp = F.log_softmax(logits.double(), dim=-1)
    terms = [-logp[b, pos, tok] for b, row in enumerate(targets) for pos, tok in row]
    return torch.stack(terms).mean()


@pytest.mark.parametrize("side", ["left", "right"])
def test_causal_loss_is_the_nll_of_target_tokens_only(side):
    torch.manual_seed(0)
    tok, model = llama_tokenizer(), tiny_llama()
    pairs = [
        encode_pair(ex, ex.references[0], tok, EncodingConfig(), encoder_decoder=False)
        for ex in (LONG, SHORT)
    ]
    batch = collate(pairs, 0, encoder_decoder=False, padding_side=side)
    with torch.no_grad():
        out = model(**batch)
    width = batch["input_ids"].shape[1]
    targets = []
    for pair in pairs:
        offset = width - len(pair.input_ids) if side == "left" else 0
        n_prompt = pair.labels.count(IGNORE_INDEX)
        # token at position t is predicted by the logits at t - 1
        targets.append(
            [(offset + t - 1, pair.input_ids[t]) for t in range(n_prompt, len(pair.input_ids))]
        )
    assert sum(len(t) for t in targets) == 3 + 3  # "cat sat </s>" and "dog sat </s>"
    assert torch.allclose(out.loss.double(), _hand_nll(out.logits, targets), atol=1e-5)
    # the same loss whichever side is padded (position ids follow the real tokens)
    other = collate(
        pairs, 0, encoder_decoder=False, padding_side="right" if side == "left" else "left"
    )
    with torch.no_grad():
        assert torch.allclose(model(**other).loss, out.loss, atol=1e-5)


@pytest.mark.parametrize(
    "make_model,make_tok",
    [(tiny_bart, bart_tokenizer), (tiny_t5, t5_tokenizer)],
    ids=["bart", "t5"],
)
def test_seq2seq_labels_padded_with_ignore_and_loss_by_hand(make_model, make_tok):
    tok, model = make_tok(), make_model()
    pairs = [
        encode_pair(ex, ex.references[0], tok, EncodingConfig(), encoder_decoder=True)
        for ex in (LONG, SHORT)
    ]
    assert pairs[0].input_ids == tok(LONG.prompt)["input_ids"]  # the tokenizer's own specials
    assert pairs[0].labels == tok(text_target="cat sat")["input_ids"]
    batch = collate(pairs, tok.pad_token_id, encoder_decoder=True, padding_side="right")
    assert "position_ids" not in batch
    labels = batch["labels"]
    assert (labels[1, len(pairs[1].labels) :] == IGNORE_INDEX).all()
    with torch.no_grad():
        out = model(**batch)
    targets = [[(t, tok_id) for t, tok_id in enumerate(p.labels)] for p in pairs]
    assert torch.allclose(out.loss.double(), _hand_nll(out.logits, targets), atol=1e-5)


def test_prompt_batch_is_left_padded_for_decoder_only():
    tok = llama_tokenizer()
    batch = prompt_batch([LONG, SHORT], tok, 32, encoder_decoder=False)
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["attention_mask"][:, -1].all() and not batch["attention_mask"][1, 0]
    assert batch["input_ids"][1].tolist() == [0, 0, 2, 4, 6, 13, 5, 6]
    enc = prompt_batch([LONG, SHORT], tok, 32, encoder_decoder=True)
    assert enc["attention_mask"][:, 0].all()  # encoder inputs: right padding
    with pytest.raises(GenerationDataError, match="'short' does not fit"):
        prompt_batch([SHORT], tok, 5, encoder_decoder=False)
