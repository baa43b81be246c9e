"""Deep ensemble: independently initialized LoRAs, combined at prediction.

``combine``: ``probs`` averages the members' probabilities (the usual deep-ensemble
predictive); ``logits`` averages their logits, then takes the softmax (the authors' code).
``same_data``: every member sees the same batches in the same order and differs only by its
init (the authors train them in lock-step on one loader); otherwise each member has its own
data order too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

import torch
from pydantic import Field

from ..adapter_model import BlobModel
from ..predictive import COMBINES, average_draws
from ..schema.types import Bool
from .base import LoadPart, Method, TrainPart

Members = Annotated[int, Field(strict=True, ge=2)]  # one member is method=mle


@dataclass
class EnsembleState:
    """The members' trained weights (every trainable tensor, keyed as the model names it)."""

    members: list[dict[str, torch.Tensor]] = field(default_factory=list)


def _snapshot(model: BlobModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.adapter_state_dict().items()}


@dataclass(frozen=True)
class DeepEnsemble(Method):
    combine: Literal[COMBINES] = "probs"
    same_data: Bool = False
    members: Members = 3  # one member is method=mle
    settable: ClassVar[tuple[str, ...]] = ("members",)

    def member_seeds(self, seed: int, member: int) -> tuple[int, int]:
        """(init seed, data seed) of a member; member 0 is the MLE run of `seed`."""
        init = seed if member == 0 else seed * 1000 + member
        return init, seed if self.same_data else init

    def parts(self) -> list[str]:
        return [f"member-{k}" for k in range(self.members)]

    def train_adapters(self, model: BlobModel, train_part: TrainPart, seed: int) -> None:
        """Member by member, each from its own init; member 0 is the MLE run of `seed`."""
        members = []
        for k, part in enumerate(self.parts()):
            init, data = self.member_seeds(seed, k)
            if k > 0:
                torch.manual_seed(init)
                model.reset_adapters()
            train_part(part, init, data)
            members.append(_snapshot(model))
        model.method_state = EnsembleState(members)

    def load_adapters(self, model: BlobModel, load_part: LoadPart) -> None:
        members = []
        for part in self.parts():
            load_part(part)
            members.append(_snapshot(model))
        model.method_state = EnsembleState(members)

    def predict(
        self, model: BlobModel, class_logits: Callable[[], torch.Tensor], n_samples: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        state = model.method_state
        if not isinstance(state, EnsembleState) or not state.members:
            return super().predict(model, class_logits, 0)  # one member: a plain LoRA
        return average_draws(class_logits, self.draws(model, state), self.combine)

    def draws(self, model: BlobModel, state: EnsembleState) -> Iterator[int]:
        """One pass per member, its weights copied in; the model's own restored after."""
        params = dict(model.named_trainable_parameters())
        current = {k: p.detach().clone() for k, p in params.items()}
        try:
            with model.sampling("mean"):
                for k, member in enumerate(state.members):
                    with torch.no_grad():
                        for name, p in params.items():
                            p.copy_(member[name])
                    yield k
        finally:
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(current[name])


METHOD = DeepEnsemble(
    name="ens",
    members=3,
    default_eval_samples=(0,),
    member_zero_from="mle",
    sharding_refusal="its members are trained one after another in one process",
    paper_options={"combine": "logits", "same_data": True},
    cost="3 LoRA runs (3x training time, 3x adapter memory on disk); 3 passes per prediction",
)
