"""What every task offers, and the batching helpers they share.

A task turns normalized examples into tensors and a model's output into class logits
(B, C). It never knows which method (MLE, BLoB, ...) runs: methods only call
``class_logits`` (once per weight sample) and softmax the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from ..data.examples import Example
from ..errors import ConfigError

PADDING_SIDES = ("right", "left")


@runtime_checkable
class Task(Protocol):
    """A task: ``collate`` examples into a batch, ``class_logits`` of a model on it."""

    name: str
    num_classes: int | None  # None: varies per example (multiple choice)

    def collate(
        self, examples: Sequence[Example], tokenizer: Any | None = None
    ) -> dict[str, torch.Tensor]: ...

    def class_logits(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor: ...


def check_padding_side(side: str) -> str:
    if side not in PADDING_SIDES:
        raise ConfigError(f"padding_side must be one of {list(PADDING_SIDES)}, got {side!r}")
    return side


def pad_id(tokenizer: Any) -> int:
    """The pad token, else EOS (decoder tokenizers often have no pad), else 0."""
    for value in (tokenizer.pad_token_id, getattr(tokenizer, "eos_token_id", None)):
        if value is not None:
            return int(value)
    return 0


def pad_sequences(
    sequences: Sequence[Sequence[int]], pad: int, side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (B, L_max), padded on ``side``."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        span = slice(0, len(seq)) if side == "right" else slice(width - len(seq), width)
        ids[i, span] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B,) index of the last non-pad position of each row, for right or left padding."""
    width = attention_mask.shape[-1]
    return width - 1 - attention_mask.flip(-1).to(torch.long).argmax(-1)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids counting only real tokens, so left padding does not shift positions."""
    return (attention_mask.to(torch.long).cumsum(-1) - 1).clamp(min=0)


def train_outputs(task: Any, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> Any:
    """What a training step's loss is computed from: the task's own ``train_outputs`` (a
    generation task's target-token logits), else its class logits."""
    own = getattr(task, "train_outputs", None)
    return own(model, batch) if own is not None else task.class_logits(model, batch)


def train_loss(
    task: Any, outputs: Any, batch: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean NLL, correct predictions, predictions) of `train_outputs`: per class label, or
    per target token for a task with its own ``train_loss``."""
    own = getattr(task, "train_loss", None)
    if own is not None:
        return own(outputs, batch)
    labels = batch["labels"]
    nll = F.cross_entropy(outputs.float(), labels)
    correct = (outputs.argmax(-1) == labels).sum()
    return nll, correct, torch.tensor(len(labels), device=nll.device)
