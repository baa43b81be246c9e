"""How much of the KL term each optimizer step carries.

- ``blob``: the authors' re-weighting cycle of M steps, ``pi_i = 2^i / (2^(M+1) - 1)``
  for i = 1..M (sums to ~1 per cycle, nearly all of it on the last steps), with
  ``M = int(100 * N^(pi/gamma) / batch)``.
- ``uniform``: ``1/M`` every step of the same cycle.
- ``elbo``: the standard per-example ELBO, ``KL / N`` (the NLL is a per-example mean).
- ``none``: no KL (a plain LoRA, or an ablation).

``cycle`` sets M directly; ``cycles`` stops the re-weighting after that many whole cycles
(the KL weight is 0 afterwards), so no cycle ends in the tail of the LR schedule, where
its KL step would be wasted (`kl_plan` chooses both). The authors' M suits their 5000 steps (about 14 cycles); in a
run of a few hundred steps it can exceed the run, and since nearly all of a cycle's KL
weight sits on its last steps, the KL term then never acts.

The authors divide by the per-process batch and the number of processes, which is the
number of examples one optimizer step consumes. We use that global batch (per-device
batch x processes x accumulation) directly: the same global batch gives the same
schedule on one GPU or eight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError

KINDS = ("blob", "uniform", "elbo", "none")


@dataclass(frozen=True)
class KLSchedule:
    kind: str
    n_train: int
    global_batch: int
    gamma: float = 8.0
    cycle: int | None = None  # M set directly (e.g. to fit whole cycles in a short run)
    cycles: int | None = None  # stop after this many whole cycles (None: never)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kl schedule {self.kind!r} is unknown; use one of {KINDS}")
        if self.n_train <= 0 or self.global_batch <= 0:
            raise ConfigError("kl schedule needs n_train > 0 and global_batch > 0")
        if self.gamma <= 0:
            raise ConfigError(f"gamma must be > 0, got {self.gamma}")
        if self.cycle is not None and self.cycle < 1:
            raise ConfigError(f"kl_cycle must be a positive number of steps, got {self.cycle}")
        if self.cycles is not None and self.cycles < 1:
            raise ConfigError(f"the number of KL cycles must be >= 1, got {self.cycles}")

    @property
    def cycle_length(self) -> int:
        """M: optimizer steps per KL cycle."""
        if self.cycle is not None:
            return self.cycle
        return max(1, int(100 * self.n_train ** (math.pi / self.gamma) / self.global_batch))

    def weight(self, step: int) -> float:
        """Weight of the KL term at optimizer step `step` (0-based)."""
        if self.kind == "none":
            return 0.0
        if self.kind == "elbo":
            return 1.0 / self.n_train
        m = self.cycle_length
        if self.cycles is not None and step >= self.cycles * m:
            return 0.0
        if self.kind == "uniform":
            return 1.0 / m
        i = step % m + 1
        # 2^i / (2^(M+1) - 1) without overflow for large M
        return 2.0 ** (i - m - 1) / (1.0 - 2.0 ** (-(m + 1)))
