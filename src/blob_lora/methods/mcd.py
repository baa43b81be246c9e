"""MC dropout: dropout kept on at prediction, probabilities averaged over N passes.

``scope``: ``adapter`` switches on only the adapters' dropout (0.1 on the LoRA input);
``all`` every dropout module of the model too (the base model's own, e.g. BERT's 0.1), as
the authors' code does by putting the whole model in train mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..adapter_model import BlobModel
from ..predictive import average_draws
from .base import Method

SCOPES = ("adapter", "all")


@dataclass(frozen=True)
class MCDropout(Method):
    scope: Literal[SCOPES] = "adapter"

    def dropouts(self, model: BlobModel) -> list[nn.Module]:
        if self.scope == "all":
            return [m for m in model.model.modules() if isinstance(m, nn.Dropout)]
        return [layer.dropout for layer in model.adapters().values()]

    def predict(
        self, model: BlobModel, class_logits: Callable[[], torch.Tensor], n_samples: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if n_samples == 0:
            return super().predict(model, class_logits, 0)
        return average_draws(class_logits, self.draws(model, n_samples))

    def draws(self, model: BlobModel, n_samples: int) -> Iterator[int]:
        """N passes with the dropout modules of `scope` on (their modes restored after)."""
        dropouts = self.dropouts(model)
        was = [d.training for d in dropouts]
        try:
            for d in dropouts:
                d.train()
            yield from range(n_samples)
        finally:
            for d, w in zip(dropouts, was, strict=True):
                d.train(w)


METHOD = MCDropout(
    name="mcd",
    adapter_dropout=0.1,
    default_eval_samples=(10,),
    sampled=True,
    paper_options={"scope": "all"},
    cost="one LoRA run; N passes per prediction",
)
