"""Restricted-head class logits equal the full model's logits at the last real position."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_bpe import tiny_bpe
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from blob_lora.data import ChoiceExample
from blob_lora.errors import BlobLoraError
from blob_lora.tasks import MultipleChoiceTask, build_task, last_token_index, positions_from_mask
from blob_lora.tasks.lm_scoring import decoder_body

EXAMPLES = [
    ChoiceExample(
        "Which of these is a source of energy for plants?",
        ["soil", "sunlight", "water", "rocks", "air"],
        1,
        id="five",
    ),
    ChoiceExample("Which is a mammal?", ["cat", "bird"], 0, id="two"),
    ChoiceExample("Which flows north?", ["the river", "the sun", "a cat"], 2, id="three"),
]


def tiny_llama(vocab: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(cfg).eval()


def tiny_gpt2(vocab: int) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4)).eval()


class RowsHead(nn.Module):
    """Stand-in for an adapter on the output layer: a low-rank delta plus forward_rows."""

    def __init__(self, base: nn.Linear, r: int = 2) -> None:
        super().__init__()
        self.base = base
        gen = torch.Generator().manual_seed(3)
        self.lora_A = nn.Parameter(0.3 * torch.randn(r, base.in_features, generator=gen))
        self.lora_B = nn.Parameter(0.3 * torch.randn(base.out_features, r, generator=gen))
        self.rows_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_A), self.lora_B)

    def forward_rows(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        self.rows_calls += 1
        bias = self.base.bias[rows] if self.base.bias is not None else None
        out = F.linear(x, self.base.weight[rows], bias)
        return out + F.linear(F.linear(x, self.lora_A), self.lora_B[rows])


def full_scores(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The reference: every vocabulary logit at every position, gathered afterwards."""
    mask = batch["attention_mask"]
    logits = model(
        input_ids=batch["input_ids"], attention_mask=mask, position_ids=positions_from_mask(mask)
    ).logits
    last = logits[torch.arange(len(mask)), last_token_index(mask)]
    return last[:, batch["answer_ids"]]


def forbid_full_head(model: nn.Module) -> None:
    def fail(*_):
        raise AssertionError("the full output layer ran")

    model.get_output_embeddings().register_forward_pre_hook(fail)


@pytest.mark.parametrize("make", [tiny_llama, tiny_gpt2], ids=["llama", "gpt2"])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("head", ["linear", "forward_rows"])
@torch.no_grad()
def test_restricted_scores_equal_full_logits(make, side, head) -> None:
    tok = tiny_bpe(bos=make is tiny_llama)
    model = make(len(tok))
    if head == "forward_rows":
        model.lm_head = RowsHead(model.lm_head)
    task = MultipleChoiceTask(tok, max_length=64, padding_side=side)
    batch = task.collate(EXAMPLES)
    assert batch["input_ids"].shape[0] == 3 and batch["choice_mask"].shape == (3, 5)
    expected = full_scores(model, batch)
    forbid_full_head(model)
    got = task.class_logits(model, batch)
    mask = batch["choice_mask"]
    assert got.shape == (3, 5) and got.dtype == torch.float32
    torch.testing.assert_close(got[mask], expected[mask].float(), atol=1e-5, rtol=1e-5)
    assert torch.isneginf(got[~mask]).all()
    if head == "forward_rows":
        assert model.lm_head.rows_calls == 1


@torch.no_grad()
def test_left_padding_scores_like_right_padding_and_like_single_rows() -> None:
    tok = tiny_bpe()
    model = tiny_llama(len(tok))
    scores = {
        side: MultipleChoiceTask(tok, padding_side=side).class_logits(
            model, MultipleChoiceTask(tok, padding_side=side).collate(EXAMPLES)
        )
        for side in ("right", "left")
    }
    torch.testing.assert_close(scores["left"], scores["right"], atol=1e-5, rtol=1e-5)
    task = MultipleChoiceTask(tok)
    for i, ex in enumerate(EXAMPLES):
        alone = task.class_logits(model, task.collate([ex]))[0]
        n = len(ex.choices)
        torch.testing.assert_close(alone[:n], scores["right"][i, :n], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_final_logit_softcapping_is_applied() -> None:
    tok = tiny_bpe()
    model = tiny_llama(len(tok))
    task = MultipleChoiceTask(tok)
    batch = task.collate(EXAMPLES[:2])
    plain = task.class_logits(model, batch)
    model.config.final_logit_softcapping = 0.05
    capped = task.class_logits(model, batch)
    mask = batch["choice_mask"]
    torch.testing.assert_close(capped[mask], torch.tanh(plain[mask] / 0.05) * 0.05)


def test_nll_over_restricted_logits_is_finite_with_absent_choices() -> None:
    tok = tiny_bpe()
    model = tiny_llama(len(tok))
    task = MultipleChoiceTask(tok)
    batch = task.collate(EXAMPLES)
    logits = task.class_logits(model, batch)
    loss = F.cross_entropy(logits, batch["labels"])
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_build_task_and_body_lookup() -> None:
    tok = tiny_bpe()
    assert isinstance(build_task("choice", tokenizer=tok), MultipleChoiceTask)
    assert type(decoder_body(tiny_llama(len(tok)))).__name__ == "LlamaModel"
    assert type(decoder_body(tiny_gpt2(len(tok)))).__name__ == "GPT2Model"
    with pytest.raises(BlobLoraError, match="unknown"):
        build_task("regression", tokenizer=tok)
    with pytest.raises(BlobLoraError, match="padding_side"):
        build_task("choice", tokenizer=tok, padding_side="middle")


@pytest.mark.parametrize("head", ["linear", "forward_rows"])
@torch.no_grad()
def test_bf16_autocast_scores_the_answer_rows_of_an_fp32_head_in_fp32(head) -> None:
    """Under bf16 autocast the body's matmuls run in bf16, but the answer rows of an fp32
    head are scored in fp32 (the head's bf16 matmul cost Gemma 0.012 NLL on OBQA)."""
    tok = tiny_bpe(bos=True)
    model = tiny_llama(len(tok))
    if head == "forward_rows":
        model.lm_head = RowsHead(model.lm_head)
    task = MultipleChoiceTask(tok, max_length=64)
    batch = task.collate(EXAMPLES)
    mask = batch["attention_mask"]
    captured = {}
    hook = model.lm_head.register_forward_pre_hook(lambda _, args: captured.update(h=args[0]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = task.class_logits(model, batch)
        model(
            input_ids=batch["input_ids"],
            attention_mask=mask,
            position_ids=positions_from_mask(mask),
        )  # the hidden states, via the hook
    hook.remove()
    h_last = captured["h"][torch.arange(len(mask)), last_token_index(mask)].float()
    expected = model.lm_head(h_last)[:, batch["answer_ids"]]  # fp32, outside autocast
    choices = batch["choice_mask"]
    torch.testing.assert_close(got[choices], expected[choices], atol=1e-5, rtol=1e-5)
