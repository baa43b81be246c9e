"""Deep ensemble: independently initialized LoRAs, combined at prediction.

``combine``: ``probs`` averages the members' probabilities (the usual deep-ensemble
predictive); ``logits`` averages their logits, then takes the softmax (the authors' code).
``same_data``: every member sees the same batches in the same order and differs only by its
init (the authors train them in lock-step on one loader); otherwise each member has its own
data order too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..adapter_model import BlobModel
from ..errors import ConfigError
from .base import Method

COMBINES = ("probs", "logits")


@dataclass(frozen=True)
class DeepEnsemble(Method):
    combine: str = "probs"
    same_data: bool = False

    def __post_init__(self) -> None:
        if self.combine not in COMBINES:
            raise ConfigError(f"ens combine {self.combine!r} is unknown; use one of {COMBINES}")

    def member_seeds(self, seed: int, member: int) -> tuple[int, int]:
        """(init seed, data seed) of a member; member 0 is the MLE run of `seed`."""
        init = seed if member == 0 else seed * 1000 + member
        return init, seed if self.same_data else init

    def predict(
        self, model: BlobModel, class_logits: Callable[[], torch.Tensor], n_samples: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        states = getattr(model, "member_states", None)
        if not states:
            return super().predict(model, class_logits, 0)
        params = dict(model.named_trainable_parameters())
        current = {k: p.detach().clone() for k, p in params.items()}
        logits = []
        try:
            with torch.no_grad(), model.sampling("mean"):
                for state in states:
                    for k, p in params.items():
                        p.copy_(state[k])
                    logits.append(class_logits().float())
        finally:
            with torch.no_grad():
                for k, p in params.items():
                    p.copy_(current[k])
        stacked = torch.softmax(torch.stack(logits), -1)
        if self.combine == "logits":
            return torch.softmax(torch.stack(logits).mean(0), -1), stacked
        return stacked.mean(0), stacked


METHOD = DeepEnsemble(
    name="ens",
    members=3,
    default_eval_samples=(0,),
    cost="3 LoRA runs (3x training time, 3x adapter memory on disk); 3 passes per prediction",
)
