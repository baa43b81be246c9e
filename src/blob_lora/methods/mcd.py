"""MC dropout: LoRA dropout 0.1 kept on at prediction, probabilities averaged over N passes."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..adapter_model import BlobModel
from .base import Method


class MCDropout(Method):
    def predict(
        self, model: BlobModel, class_logits: Callable[[], torch.Tensor], n_samples: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if n_samples == 0:
            return super().predict(model, class_logits, 0)
        dropouts = [layer.dropout for layer in model.adapters().values()]
        was = [d.training for d in dropouts]
        samples = []
        try:
            for d in dropouts:
                d.train()
            with torch.no_grad():
                for _ in range(n_samples):
                    samples.append(torch.softmax(class_logits().float(), -1))
        finally:
            for d, w in zip(dropouts, was, strict=True):
                d.train(w)
        stacked = torch.stack(samples)
        return stacked.mean(0), stacked


METHOD = MCDropout(
    name="mcd",
    adapter_dropout=0.1,
    default_eval_samples=(10,),
    cost="one LoRA run; N passes per prediction",
)
