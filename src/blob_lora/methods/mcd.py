"""MC dropout: dropout kept on at prediction, probabilities averaged over N passes.

``scope``: ``adapter`` switches on only the adapters' dropout (0.1 on the LoRA input);
``all`` every dropout module of the model too (the base model's own, e.g. BERT's 0.1), as
the authors' code does by putting the whole model in train mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..adapter_model import BlobModel
from ..errors import ConfigError
from .base import Method

SCOPES = ("adapter", "all")


@dataclass(frozen=True)
class MCDropout(Method):
    scope: str = "adapter"

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ConfigError(f"mcd scope {self.scope!r} is unknown; use one of {SCOPES}")

    def dropouts(self, model: BlobModel) -> list[nn.Module]:
        if self.scope == "all":
            return [m for m in model.model.modules() if isinstance(m, nn.Dropout)]
        return [layer.dropout for layer in model.adapters().values()]

    def predict(
        self, model: BlobModel, class_logits: Callable[[], torch.Tensor], n_samples: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if n_samples == 0:
            return super().predict(model, class_logits, 0)
        dropouts = self.dropouts(model)
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
