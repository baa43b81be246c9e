"""Token ids for training and generating: prompt masking, source truncation, padding.

Decoder-only: ``prompt + target + eos`` with labels -100 on the prompt and the padding, so the
loss is the token-level NLL of the target alone. Encoder-decoder: the prompt is the encoder
input and the target (with the tokenizer's own special tokens) the labels. Only the source
text is ever cut to fit ``max_length``: the template's fixed text and the target are kept
whole (a target is cut only up to an explicit ``max_target_length``), and an example that
cannot fit is refused with an error naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from ..errors import ConfigError
from ..schema import settings
from ..schema.types import Bool, Positive, Text
from .data import GenerationDataError, GenerationExample, split_template

IGNORE_INDEX = -100  # labels with this value add nothing to the HF cross-entropy loss
PADDING_SIDES = ("left", "right")


@settings(frozen=True)
class EncodingConfig:
    """Length limits. ``max_length``: decoder-only, prompt + target; encoder-decoder, the
    encoder input. ``max_target_length``: a cap on target tokens (None: never cut a target).
    ``target_prefix``: text put before a decoder-only target (the space after "Summary:")."""

    max_length: Positive = 1024
    max_target_length: Positive | None = None
    truncate_source: Bool = True
    target_prefix: Text = " "


@dataclass(frozen=True)
class Encoded:
    """One (prompt, target) pair as ids; ``labels`` is empty for a prompt-only encoding."""

    input_ids: list[int]
    labels: list[int]
    id: str | None = None
    truncated_source: bool = False
    truncated_target: bool = False


def _name(example: GenerationExample) -> str:
    return f"example {example.id!r}" if example.id is not None else "an example"


def prompt_ids(
    example: GenerationExample,
    tokenizer: PreTrainedTokenizerBase,
    budget: int,
    *,
    causal: bool,
    truncate_source: bool = True,
) -> tuple[list[int], bool]:
    """The prompt's ids in at most ``budget`` tokens, cutting the end of the source only.

    The whole prompt is tokenized once (so it reads as at generation time) and source tokens
    are found by character offsets. Causal prompts keep leading special tokens (BOS) and drop
    trailing ones (an EOS would end the text before the target).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("generation encoding needs a fast tokenizer (character offsets)")
    prefix, _ = split_template(example.template)
    start, end = len(prefix), len(prefix) + len(example.source)
    enc = tokenizer(
        example.prompt,
        add_special_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    ids, offsets, special = enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]
    if causal:
        keep = len(ids)
        while keep > 0 and special[keep - 1]:
            keep -= 1
        ids, offsets, special = ids[:keep], offsets[:keep], special[:keep]
    if len(ids) <= budget:
        return list(ids), False
    src = [i for i, (s, e) in enumerate(offsets) if not special[i] and s < end and e > start]
    need = len(ids) - budget
    if not truncate_source or need >= len(src):  # keep at least one source token
        fixed = len(ids) - len(src)
        why = (
            f"the template and special tokens alone take {fixed}"
            if truncate_source
            else f"the prompt takes {len(ids)} (truncate_source is off)"
        )
        raise GenerationDataError(
            f"{_name(example)} does not fit: {why} of the {budget} tokens left for the prompt; "
            "raise max_length or shorten the template"
        )
    drop = set(src[len(src) - need :])
    return [t for i, t in enumerate(ids) if i not in drop], True


def _target_ids(text: str, tokenizer: PreTrainedTokenizerBase, causal: bool) -> list[int]:
    if causal:
        if tokenizer.eos_token_id is None:
            raise ConfigError("a decoder-only target needs the tokenizer's eos token")
        return list(tokenizer(text, add_special_tokens=False)["input_ids"]) + [
            tokenizer.eos_token_id
        ]
    return list(tokenizer(text_target=text, add_special_tokens=True)["input_ids"])


def encode_pair(
    example: GenerationExample,
    target: str,
    tokenizer: PreTrainedTokenizerBase,
    config: EncodingConfig,
    *,
    encoder_decoder: bool,
) -> Encoded:
    """Ids and labels of one (example, reference) pair for teacher-forced training."""
    causal = not encoder_decoder
    tgt = _target_ids((config.target_prefix if causal else "") + target, tokenizer, causal)
    cut_target = config.max_target_length is not None and len(tgt) > config.max_target_length
    if cut_target:
        tgt = tgt[: config.max_target_length]  # explicit cap: the tail (and EOS) is dropped
    budget = config.max_length - len(tgt) if causal else config.max_length
    if budget <= 0:
        raise GenerationDataError(
            f"{_name(example)}: its target takes {len(tgt)} tokens, max_length is "
            f"{config.max_length}; raise max_length or set max_target_length"
        )
    prompt, cut_source = prompt_ids(
        example, tokenizer, budget, causal=causal, truncate_source=config.truncate_source
    )
    if causal:
        ids, labels = prompt + tgt, [IGNORE_INDEX] * len(prompt) + tgt
    else:
        ids, labels = prompt, tgt
    return Encoded(ids, labels, example.id, cut_source, cut_target)


def encode_examples(
    examples: Sequence[GenerationExample],
    tokenizer: PreTrainedTokenizerBase,
    config: EncodingConfig,
    *,
    encoder_decoder: bool,
) -> list[Encoded]:
    """One training pair per reference of every example."""
    return [
        encode_pair(ex, ref, tokenizer, config, encoder_decoder=encoder_decoder)
        for ex in examples
        for ref in ex.references
    ]


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The pad id, or EOS for tokenizers without one (masked out either way)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ConfigError("the tokenizer has neither a pad nor an eos token to pad with")
    return pad


def _pad(rows: Sequence[Sequence[int]], value: int, side: str) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            if side == "left":
                out[i, width - len(r) :] = torch.tensor(r)
            else:
                out[i, : len(r)] = torch.tensor(r)
    return out


def collate(
    batch: Sequence[Encoded],
    pad_id: int,
    *,
    encoder_decoder: bool,
    padding_side: str = "right",
    position_ids: bool = True,
) -> dict[str, torch.Tensor]:
    """A model-ready batch. Decoder-only labels follow the inputs' padding side and get
    ``position_ids`` counted from each row's first real token, so left and right padding give
    the same loss. Encoder-decoder labels are right-padded with -100 (the model shifts them
    into decoder inputs itself)."""
    if padding_side not in PADDING_SIDES:
        raise ConfigError(f"padding_side must be one of {PADDING_SIDES}, got {padding_side!r}")
    if not batch:
        raise ConfigError("cannot collate an empty batch")
    ids = _pad([b.input_ids for b in batch], pad_id, padding_side)
    mask = _pad([[1] * len(b.input_ids) for b in batch], 0, padding_side)
    out = {"input_ids": ids, "attention_mask": mask}
    if any(b.labels for b in batch):
        side = "right" if encoder_decoder else padding_side
        out["labels"] = _pad([b.labels for b in batch], IGNORE_INDEX, side)
    if position_ids and not encoder_decoder:
        out["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    return out


def prompt_batch(
    examples: Sequence[GenerationExample],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    *,
    encoder_decoder: bool,
    truncate_source: bool = True,
) -> dict[str, torch.Tensor]:
    """Prompts for ``generate``: decoder-only rows are left-padded (new tokens must follow
    each prompt directly), encoder inputs right-padded. ``max_length`` bounds the prompt."""
    encoded = []
    for ex in examples:
        ids, cut = prompt_ids(
            ex, tokenizer, max_length, causal=not encoder_decoder, truncate_source=truncate_source
        )
        encoded.append(Encoded(ids, [], ex.id, cut))
    side = "right" if encoder_decoder else "left"
    return collate(
        encoded,
        pad_token_id(tokenizer),
        encoder_decoder=encoder_decoder,
        padding_side=side,
        position_ids=False,
    )
