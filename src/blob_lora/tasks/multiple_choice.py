"""Causal-LM multiple choice: prompt, answer tokens, and class logits from one position.

Batch: ``input_ids``/``attention_mask`` (B, L), ``labels`` (B,), ``choice_mask`` (B, C)
(False where a question has fewer choices), ``answer_ids`` (C,) - the token of each answer
(" A", " B", ... or " no", " yes"). Class logits are the next-token logits of those tokens
at the last real position; absent choices get -inf, so softmax and cross-entropy over them
are exactly "softmax over this question's answers".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..data.examples import ChoiceExample, Example
from ..errors import BlobLoraError
from .base import check_padding_side, pad_id, pad_sequences
from .encoding import answer_token_id, encode_prompt
from .lm_scoring import last_position_logits
from .prompts import answer_strings, format_prompt


class MultipleChoiceTask:
    """Zero-shot multiple choice for a causal LM (see the module docstring)."""

    name = "choice"
    num_classes = None  # 2 to 5 per question in the paper's datasets

    def __init__(self, tokenizer: Any, max_length: int = 256, padding_side: str = "right"):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.padding_side = check_padding_side(padding_side)
        self._answer_ids: dict[str, int] = {}  # for self.tokenizer

    def prompt(self, example: ChoiceExample) -> str:
        return format_prompt(example).text

    def answer_ids(self, answers: Sequence[str], tokenizer: Any | None = None) -> list[int]:
        """Token ids of ``answers``, checked to be single and distinct tokens."""
        tokenizer = tokenizer or self.tokenizer
        ids = []
        for answer in answers:
            if tokenizer is not self.tokenizer:
                ids.append(answer_token_id(tokenizer, answer))
                continue
            if answer not in self._answer_ids:
                self._answer_ids[answer] = answer_token_id(tokenizer, answer)
            ids.append(self._answer_ids[answer])
        if len(set(ids)) != len(ids):
            raise BlobLoraError(f"answers {list(answers)} share tokens {ids} in this tokenizer")
        return ids

    def collate(
        self, examples: Sequence[Example], tokenizer: Any | None = None
    ) -> dict[str, torch.Tensor]:
        tokenizer = tokenizer or self.tokenizer
        examples = [_as_choice(ex) for ex in examples]
        per_row = [answer_strings(ex) for ex in examples]
        answers = max(per_row, key=len)
        for ex, row in zip(examples, per_row, strict=True):
            if row != answers[: len(row)]:
                raise BlobLoraError(
                    f"example {ex.id!r} answers with {row}, others in its batch with {answers}; "
                    "a batch needs one answer vocabulary"
                )
        sequences = [
            encode_prompt(tokenizer, format_prompt(ex), self.max_length) for ex in examples
        ]
        input_ids, attention_mask = pad_sequences(sequences, pad_id(tokenizer), self.padding_side)
        counts = torch.tensor([len(row) for row in per_row])
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": torch.tensor([ex.label for ex in examples], dtype=torch.long),
            "choice_mask": torch.arange(len(answers))[None, :] < counts[:, None],
            "answer_ids": torch.tensor(self.answer_ids(answers, tokenizer), dtype=torch.long),
        }

    def class_logits(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, C) float32 logits of the answer tokens; -inf for absent choices."""
        logits = last_position_logits(
            model, batch["input_ids"], batch["attention_mask"], batch["answer_ids"]
        ).float()
        return logits.masked_fill(~batch["choice_mask"].to(torch.bool), float("-inf"))


def _as_choice(example: Example) -> ChoiceExample:
    if not isinstance(example, ChoiceExample):
        raise BlobLoraError(
            f"multiple-choice task got a {type(example).__name__} (a sequence-classification "
            "dataset): use task=classification with an encoder model"
        )
    return example
