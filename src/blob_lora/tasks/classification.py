"""Sequence classification with an encoder and a classification head.

Batch: the tokenizer's inputs (``input_ids``, ``attention_mask``, ``token_type_ids`` where
the model uses them) and ``labels`` (B,). Class logits are the head's output.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..data.examples import Example, as_text_example
from ..errors import BlobLoraError
from .base import check_padding_side

_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class ClassificationTask:
    """Text or text-pair classification (RTE, MRPC, CoLA, WiC, BoolQ as (question, passage))."""

    name = "classification"

    def __init__(
        self,
        tokenizer: Any,
        max_length: int = 256,
        num_labels: int | None = None,
        padding_side: str = "right",
    ):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.num_classes = num_labels
        self.padding_side = check_padding_side(padding_side)

    def collate(
        self, examples: Sequence[Example], tokenizer: Any | None = None
    ) -> dict[str, torch.Tensor]:
        tokenizer = tokenizer or self.tokenizer
        texts = [as_text_example(ex) for ex in examples]
        has_pair = {ex.text_pair is not None for ex in texts}
        if len(has_pair) > 1:
            raise BlobLoraError("a batch mixes single texts and text pairs")
        labels = torch.tensor([ex.label for ex in texts], dtype=torch.long)
        if self.num_classes is not None and int(labels.max()) >= self.num_classes:
            raise BlobLoraError(
                f"label {int(labels.max())} is out of range for {self.num_classes} classes"
            )
        enc = tokenizer(
            [ex.text for ex in texts],
            [ex.text_pair for ex in texts] if has_pair == {True} else None,
            truncation=True,
            max_length=self.max_length,
            padding="longest",
            padding_side=self.padding_side,
            return_tensors="pt",
        )
        batch = {k: enc[k] for k in _MODEL_INPUTS if k in enc}
        batch["labels"] = labels
        return batch

    def class_logits(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, num_labels) float32 logits of the classification head."""
        inputs = {k: batch[k] for k in _MODEL_INPUTS if k in batch}
        with head_in_fp32(model):
            return model(**inputs).logits.float()


@contextmanager
def head_in_fp32(model: nn.Module) -> Iterator[None]:
    """Run an fp32 classification head in fp32 even under bf16 autocast: logits rounded
    to bf16 (3 significant digits) move ECE and NLL by more than methods differ by. The
    head's forward is wrapped only while the context is open."""
    head = getattr(model, "classifier", None) or getattr(model, "score", None)
    params = list(head.parameters()) if isinstance(head, nn.Module) else []
    device = params[0].device.type if params else "cpu"
    if (
        not params
        or not torch.is_autocast_enabled(device)
        or any(p.dtype != torch.float32 for p in params)
    ):
        yield
        return
    inner = head.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        args = tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)
        with torch.autocast(device_type=device, enabled=False):
            return inner(*args, **kwargs)

    head.forward = forward
    try:
        yield
    finally:
        del head.forward
