"""Tokenize a prompt to at most ``max_length`` tokens without losing its end.

The answer is read at the last position, so truncation removes tokens from the LEFT of the
context (a passage's start) first, then from the left of the rest; leading special tokens
(BOS) are kept and trailing ones (an EOS some tokenizers append) dropped.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .prompts import ANSWER_CUE, Prompt


def encode_prompt(tokenizer: Any, prompt: Prompt, max_length: int) -> list[int]:
    """Token ids of ``prompt``, left-truncated to ``max_length`` as described above."""
    use_offsets = bool(getattr(tokenizer, "is_fast", False)) and prompt.context_span is not None
    enc = tokenizer(
        prompt.text,
        add_special_tokens=True,
        return_special_tokens_mask=True,
        return_offsets_mapping=use_offsets,
    )
    ids, special = list(enc["input_ids"]), list(enc["special_tokens_mask"])
    offsets = list(enc["offset_mapping"]) if use_offsets else None
    while ids and special[-1]:
        ids.pop(), special.pop()
        if offsets:
            offsets.pop()
    excess = len(ids) - max_length
    if excess <= 0:
        return ids
    lead = next((i for i, s in enumerate(special) if not s), len(ids))
    if max_length <= lead:
        raise ConfigError(f"max_length {max_length} leaves no room after {lead} special tokens")
    drop: list[int] = []
    if offsets is not None:
        start, end = prompt.context_span
        drop = [i for i in range(lead, len(ids)) if not special[i] and start <= offsets[i][0] < end]
        drop = drop[:excess]
    dropped = set(drop)
    rest = [i for i in range(lead, len(ids)) if i not in dropped]
    dropped.update(rest[: excess - len(drop)])
    return [t for i, t in enumerate(ids) if i not in dropped]


def answer_token_id(tokenizer: Any, answer: str, cue: str = ANSWER_CUE) -> int:
    """The single token the model produces for `` answer`` right after ``cue``.

    Read off the tokenization of ``cue + " " + answer`` (not of " A" alone, which
    SentencePiece tokenizers prefix differently), and required to be exactly one token.
    """
    base = tokenizer(cue, add_special_tokens=False)["input_ids"]
    full = tokenizer(f"{cue} {answer}", add_special_tokens=False)["input_ids"]
    if len(full) != len(base) + 1 or full[: len(base)] != base:
        tokens = (
            tokenizer.convert_ids_to_tokens(full[len(base) :])
            if full[: len(base)] == base
            else full
        )
        raise ConfigError(
            f"answer {' ' + answer!r} is not one token after {cue!r} for tokenizer "
            f"{type(tokenizer).__name__} ({getattr(tokenizer, 'name_or_path', '')!s}): it is "
            f"{tokens}; multiple-choice scoring needs one token per answer"
        )
    return int(full[-1])
