"""Tasks: how normalized examples become batches and a model's outputs class logits."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .base import Task, last_token_index, pad_sequences, positions_from_mask
from .classification import ClassificationTask
from .generation import GenerationTask
from .lm_scoring import decoder_body, last_position_logits
from .multiple_choice import MultipleChoiceTask
from .prompts import answer_strings, format_prompt

TASK_KINDS = {
    "choice": "choice",
    "multiple_choice": "choice",
    "multiple-choice": "choice",
    "classification": "classification",
    "seq-cls": "classification",
    "generate": "generate",
    "generation": "generate",
}


def build_task(
    kind: str,
    *,
    tokenizer: Any,
    max_length: int = 256,
    num_labels: int | None = None,
    padding_side: str = "right",
    encoder_decoder: bool = False,
    max_target_length: int | None = None,
) -> Task:
    """The task for ``kind``: "choice" (causal-LM multiple choice), "classification", or
    "generate" (source -> target text with a causal LM, or an encoder-decoder)."""
    resolved = TASK_KINDS.get(kind)
    if resolved is None:
        raise ConfigError(f"task kind {kind!r} is unknown; use one of {sorted(set(TASK_KINDS))}")
    if resolved == "generate":
        return GenerationTask(
            tokenizer,
            encoder_decoder=encoder_decoder,
            max_length=max_length,
            max_target_length=max_target_length,
        )
    if resolved == "choice":
        return MultipleChoiceTask(tokenizer, max_length=max_length, padding_side=padding_side)
    return ClassificationTask(
        tokenizer, max_length=max_length, num_labels=num_labels, padding_side=padding_side
    )


__all__ = [
    "ClassificationTask",
    "GenerationTask",
    "MultipleChoiceTask",
    "Task",
    "answer_strings",
    "build_task",
    "decoder_body",
    "format_prompt",
    "last_position_logits",
    "last_token_index",
    "pad_sequences",
    "positions_from_mask",
]
