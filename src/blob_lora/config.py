"""Adapter configuration: one dataclass, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

ADAPTER_KINDS = ("lora", "blob", "bbb")
SAMPLE_MODES = ("sequence", "flipout")
# prediction only: `head` draws no network at all: the trunk once at its posterior mean,
# and the head adapter's exact Gaussian over the class logits (predictive.head_predictive)
PREDICT_MODES = (*SAMPLE_MODES, "head")
# keys added after adapters were saved without them: the value those adapters ran with
LEGACY_VALUES: dict[str, Any] = {"predict_sample_mode": None}  # the training noise
STD_PARAMS = ("square", "softplus")


@dataclass
class AdapterConfig:
    """What to put where. Defaults follow the BLoB paper (r=8, beta=0.2, eps=0.05)."""

    kind: str = field(default="blob", metadata={"help": "lora | blob (Bayesian A) | bbb (A and B)"})
    r: int = field(default=8, metadata={"help": "LoRA rank"})
    alpha: float = field(default=16.0, metadata={"help": "LoRA scaling numerator: s = alpha / r"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter input"})
    target_modules: list[str] | str = field(
        default_factory=lambda: ["q_proj", "v_proj"],
        metadata={"help": "module-name suffixes (list) or a full-match regex (str), as PEFT"},
    )
    modules_to_save: list[str] = field(
        default_factory=list,
        metadata={"help": "modules trained in full (e.g. a fresh classifier head)"},
    )
    prior_std: float = field(default=0.2, metadata={"help": "beta: prior N(0, beta^2) on A"})
    init_std_eps: float = field(
        default=0.05, metadata={"help": "eps: G ~ U(eps/sqrt(2), eps) at init"}
    )
    std_param: str = field(
        default="square", metadata={"help": "Omega = G*G (square) or softplus(G)"}
    )
    sample_mode: str = field(
        default="flipout",
        metadata={
            "help": "noise in training (and at N samples when predict_sample_mode is null): "
            "flipout (the authors' per-token signs; the default, chosen on MRPC dev: "
            "experiments/results/protocol_check.md) or sequence (one A per example; generation "
            "always samples per sequence)"
        },
    )

    predict_sample_mode: str | None = field(
        default="sequence",
        metadata={
            "help": "noise of the N samples: sequence (one weight sample per input, a whole "
            "network per draw; the default, chosen on MRPC dev: experiments/results/"
            "noise_at_test.md), flipout, head (one pass: the trunk at its mean, the head "
            "adapter's exact Gaussian logits), or null for the training noise (the paper "
            "preset)"
        },
    )

    def __post_init__(self) -> None:
        if self.kind not in ADAPTER_KINDS:
            raise ConfigError(f"adapter kind {self.kind!r} is unknown; use one of {ADAPTER_KINDS}")
        if not isinstance(self.r, int) or self.r <= 0:
            raise ConfigError(f"rank r must be a positive integer, got {self.r!r}")
        if self.alpha <= 0:
            raise ConfigError(f"alpha must be > 0, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.prior_std <= 0:
            raise ConfigError(f"prior_std (beta) must be > 0, got {self.prior_std!r}")
        if self.init_std_eps <= 0:
            raise ConfigError(f"init_std_eps must be > 0, got {self.init_std_eps!r}")
        if self.std_param not in STD_PARAMS:
            raise ConfigError(f"std_param {self.std_param!r} is unknown; use one of {STD_PARAMS}")
        if self.sample_mode not in SAMPLE_MODES:
            raise ConfigError(
                f"sample_mode {self.sample_mode!r} is unknown; use one of {SAMPLE_MODES}"
            )
        if self.predict_sample_mode not in (None, *PREDICT_MODES):
            raise ConfigError(
                f"predict_sample_mode {self.predict_sample_mode!r} is unknown; use one of "
                f"{PREDICT_MODES} or leave it unset (the training noise)"
            )
        if self.predict_sample_mode == "head" and self.kind != "blob":
            raise ConfigError(
                f"predict_sample_mode=head needs a Gaussian A and a point-estimate B (kind "
                f"blob); this adapter is {self.kind!r}: use sequence or flipout"
            )
        if not self.target_modules:
            raise ConfigError("target_modules is empty; name at least one module, e.g. q_proj")
        if isinstance(self.target_modules, tuple):
            self.target_modules = list(self.target_modules)

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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown adapter config keys {unknown}; known keys are {sorted(known)}"
            )
        return cls(**data)
