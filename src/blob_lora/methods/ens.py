"""Deep ensemble: independently initialized LoRAs (own init and data order), averaged."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..adapter_model import BlobModel
from .base import Method


class DeepEnsemble(Method):
    def predict(
        self, model: BlobModel, class_logits: Callable[[], torch.Tensor], n_samples: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        states = getattr(model, "member_states", None)
        if not states:
            return super().predict(model, class_logits, 0)
        params = dict(model.named_trainable_parameters())
        current = {k: p.detach().clone() for k, p in params.items()}
        samples = []
        try:
            with torch.no_grad(), model.sampling("mean"):
                for state in states:
                    for k, p in params.items():
                        p.copy_(state[k])
                    samples.append(torch.softmax(class_logits().float(), -1))
        finally:
            with torch.no_grad():
                for k, p in params.items():
                    p.copy_(current[k])
        stacked = torch.stack(samples)
        return stacked.mean(0), stacked


METHOD = DeepEnsemble(
    name="ens",
    members=3,
    default_eval_samples=(0,),
    cost="3 LoRA runs (3x training time, 3x adapter memory on disk); 3 passes per prediction",
)
