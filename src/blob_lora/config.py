"""Adapter configuration: one dataclass, its types and ranges checked by the settings
schema on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import Field

from .errors import ConfigError
from .schema import settings, validate
from .schema.types import Name, PositiveFloat, Share
from .schema.types import Positive as PositiveInt

ADAPTER_KINDS = ("lora", "blob", "bbb")
SAMPLE_MODES = ("sequence", "flipout")
# prediction only, no network drawn: `head`, the trunk once at its posterior mean and the
# head adapter's exact Gaussian over the class logits (predictive.head_predictive);
# `linear`, every Bayesian layer's noise pushed to the logits through the Jacobian at the
# mean (predictive/linearized.py)
PREDICT_MODES = (*SAMPLE_MODES, "head", "linear")
# keys added after adapters were saved without them: the value those adapters ran with
LEGACY_VALUES: dict[str, Any] = {"predict_sample_mode": None}  # the training noise
STD_PARAMS = ("square", "softplus")
Modules = Annotated[list[Name], Field(min_length=1)]


@settings
class AdapterConfig:
    """What to put where. Defaults follow the BLoB paper (r=8, beta=0.2, eps=0.05)."""

    kind: Literal[ADAPTER_KINDS] = field(
        default="blob", metadata={"help": "lora | blob (Bayesian A) | bbb (A and B)"}
    )
    r: PositiveInt = field(default=8, metadata={"help": "LoRA rank"})
    alpha: PositiveFloat = field(
        default=16.0, metadata={"help": "LoRA scaling numerator: s = alpha / r"}
    )
    dropout: Share = field(default=0.0, metadata={"help": "dropout on the adapter input"})
    target_modules: Modules | Name = field(
        default_factory=lambda: ["q_proj", "v_proj"],
        metadata={"help": "module-name suffixes (list) or a full-match regex (str), as PEFT"},
    )
    modules_to_save: list[Name] = field(
        default_factory=list,
        metadata={"help": "modules trained in full (e.g. a fresh classifier head)"},
    )
    prior_std: PositiveFloat = field(
        default=0.2, metadata={"help": "beta: prior N(0, beta^2) on A"}
    )
    init_std_eps: PositiveFloat = field(
        default=0.05, metadata={"help": "eps: G ~ U(eps/sqrt(2), eps) at init"}
    )
    std_param: Literal[STD_PARAMS] = field(
        default="square", metadata={"help": "Omega = G*G (square) or softplus(G)"}
    )
    sample_mode: Literal[SAMPLE_MODES] = field(
        default="flipout",
        metadata={
            "help": "noise in training (and at N samples when predict_sample_mode is null): "
            "flipout (the authors' per-token signs; the default, chosen on MRPC dev: "
            "experiments/results/protocol_check.md) or sequence (one A per example; generation "
            "always samples per sequence)"
        },
    )

    predict_sample_mode: Literal[PREDICT_MODES] | None = field(
        default="sequence",
        metadata={
            "help": "noise of the N samples: sequence (one weight sample per input, a whole "
            "network per draw; the default, chosen on MRPC dev: experiments/results/"
            "noise_at_test.md), flipout, head (one pass: the trunk at its mean, the head "
            "adapter's exact Gaussian logits), linear (one forward and C-1 backward passes: "
            "every adapter's noise pushed to the logits to first order), or null for the "
            "training noise (the paper preset)"
        },
    )

    def __post_init__(self) -> None:
        if self.predict_sample_mode in ("head", "linear") and self.kind != "blob":
            raise ConfigError(
                f"predict_sample_mode={self.predict_sample_mode} needs a Gaussian A and a "
                f"point-estimate B (kind blob); this adapter is {self.kind!r}: use sequence "
                "or flipout"
            )

    @property
    def scaling(self) -> float:
        return self.alpha / self.r

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_saved(cls, data: dict[str, Any]) -> AdapterConfig:
        """A config as a run or adapter saved it: keys it predates take the value that run
        used, not today's default (saves are full dumps, so a missing key is an older one)."""
        return cls.from_dict(LEGACY_VALUES | dict(data))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterConfig:
        return validate(cls, data, "adapter")
