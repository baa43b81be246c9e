"""Text generation (summarization) as a task: teacher-forced batches, the token-level NLL of
the targets, and prompts for decoding.

Decoder-only: ``prompt + target + eos`` with the prompt and the padding masked, so the loss is
the NLL of the target tokens alone. The output layer (262k rows for Gemma) is computed only at
the positions that predict a target token, gathered per row so each row keeps its own weight
sample in ``sampling("sequence")``. Encoder-decoder: the prompt is the encoder input, the
target the labels, and every non-pad decoder position is a target. Like every task, it never
knows which method runs.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.examples import GenerationExample
from ..errors import BlobLoraError, ConfigError
from ..generation.encoding import (
    IGNORE_INDEX,
    EncodingConfig,
    collate,
    encode_pair,
    pad_token_id,
    prompt_batch,
)
from .lm_scoring import decoder_body, softcap, unwrap_lm

# per family of attention-layer names: q/k/v of every attention (self and, for
# encoder-decoders, the decoder's cross-attention) plus the LM head
DEFAULT_TARGETS = (["q_proj", "k_proj", "v_proj", "lm_head"], ["q", "k", "v", "lm_head"])


class GenerationTask:
    """Source -> target generation with a causal LM or an encoder-decoder."""

    name = "generate"
    num_classes = None
    generates = True

    def __init__(
        self,
        tokenizer: Any,
        *,
        encoder_decoder: bool,
        max_length: int = 1024,
        max_target_length: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.encoder_decoder = encoder_decoder
        self.encoding = EncodingConfig(max_length=max_length, max_target_length=max_target_length)

    # -- batches ----------------------------------------------------------------------------
    def collate(
        self, examples: Sequence[GenerationExample], tokenizer: Any | None = None
    ) -> dict[str, torch.Tensor]:
        """Teacher-forced batch of each example's first reference (training examples carry
        one each: `reference_pairs` spreads an input's references over examples)."""
        tokenizer = tokenizer or self.tokenizer
        if any(not isinstance(ex, GenerationExample) for ex in examples):
            raise BlobLoraError("a generation batch needs source/target examples")
        encoded = [
            encode_pair(
                ex, ex.references[0], tokenizer, self.encoding, encoder_decoder=self.encoder_decoder
            )
            for ex in examples
        ]
        return collate(encoded, pad_token_id(tokenizer), encoder_decoder=self.encoder_decoder)

    def prompts(
        self, examples: Sequence[GenerationExample], truncate_source: bool = True
    ) -> dict[str, torch.Tensor]:
        """Prompt batch for ``generate`` (decoder-only rows left-padded)."""
        return prompt_batch(
            examples,
            self.tokenizer,
            self.encoding.max_length,
            encoder_decoder=self.encoder_decoder,
            truncate_source=truncate_source,
        )

    # -- the loss ---------------------------------------------------------------------------
    def train_outputs(
        self, model: nn.Module, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, W, V), targets (B, W)): the next-token logits at each row's W target
        positions and the tokens they predict (-100 past a row's last target)."""
        hf = unwrap_lm(model)
        if self.encoder_decoder:
            labels = batch["labels"]
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
            prepare = getattr(hf, "prepare_decoder_input_ids_from_labels", None)
            if prepare is not None:
                inputs["decoder_input_ids"] = prepare(labels=labels)
            else:  # the model shifts the labels itself (and computes a loss we ignore)
                inputs["labels"] = labels
            return hf(**inputs, use_cache=False).logits, labels
        return _causal_target_logits(hf, batch)

    def train_loss(
        self, outputs: tuple[torch.Tensor, torch.Tensor], batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean NLL per target token, correctly predicted tokens, target tokens)."""
        logits, targets = outputs
        flat = logits.float().reshape(-1, logits.shape[-1])
        nll = F.cross_entropy(flat, targets.reshape(-1), ignore_index=IGNORE_INDEX)
        valid = targets != IGNORE_INDEX
        correct = ((logits.argmax(-1) == targets) & valid).sum()
        return nll, correct, valid.sum()

    def sequence_logprobs(
        self, model: nn.Module, batch: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(target) (B,), target tokens (B,)) of every row, in float32."""
        logits, targets = self.train_outputs(model, batch)
        nll = F.cross_entropy(
            logits.float().transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none"
        )
        return -nll.sum(-1), (targets != IGNORE_INDEX).sum(-1)


def reference_pairs(examples: Sequence[GenerationExample]) -> list[GenerationExample]:
    """One example per (input, reference): what training and the reference NLL see."""
    return [replace(ex, references=(ref,)) for ex in examples for ref in ex.references]


@functools.cache
def _forward_params(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def _causal_target_logits(
    hf: nn.Module, batch: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    head = hf.get_output_embeddings()
    if head is None:
        raise ConfigError(f"{type(hf).__name__} has no output layer (get_output_embeddings)")
    body = decoder_body(hf)
    kwargs: dict[str, Any] = {
        "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"],
    }
    params = _forward_params(type(body))
    if "use_cache" in params:
        kwargs["use_cache"] = False
    if "position_ids" in params and "position_ids" in batch:
        kwargs["position_ids"] = batch["position_ids"]
    hidden = body(**kwargs)[0]
    positions, targets = target_positions(batch["labels"])
    picked = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    return softcap(head(picked), hf.config), targets


def target_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For decoder-only labels (B, T): the positions (B, W) whose hidden state predicts a
    target token (position t predicts token t+1), in order, and those tokens (B, W); rows
    with fewer than W targets are filled with position 0 and target -100."""
    following = labels[:, 1:]
    valid = following != IGNORE_INDEX
    counts = valid.sum(-1)
    width = max(int(counts.max()), 1) if counts.numel() else 1
    order = torch.argsort((~valid).to(torch.int8), dim=-1, stable=True)[:, :width]
    keep = torch.arange(width, device=labels.device).unsqueeze(0) < counts.unsqueeze(1)
    targets = following.gather(1, order).masked_fill(~keep, IGNORE_INDEX)
    return order.masked_fill(~keep, 0), targets


def default_targets(model: nn.Module, targets: list[str] | str) -> list[str] | str:
    """The adapter targets of a generation run: the configured ones when they match the
    model, else (the run config's encoder default, say) q/k/v of every attention and the
    LM head, by the names this architecture uses."""
    from ..inject import name_matches

    if isinstance(targets, str):  # a regex is the user's own choice
        return targets
    names = [n for n, _ in model.named_modules() if n]
    if all(any(name_matches(n, [p]) for n in names) for p in targets):
        return targets
    for candidate in DEFAULT_TARGETS:
        if all(any(name_matches(n, [p]) for n in names) for p in candidate):
            return list(candidate)
    return targets  # injection reports what matched nothing
