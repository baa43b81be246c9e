"""Optimizer schemes for Bayesian adapters.

``authors`` (faithful to the BLoB code): AdamW steps on the NLL for the means (M, B and
any fully trained head); a plain SGD at ``kl_lr`` then steps on ``pi * KL`` for every
adapter parameter, and the std parameters G are moved only by that SGD, on their NLL
and KL gradients together.

``elbo``: one AdamW on ``NLL + pi * KL`` for all parameters.

The KL gradient is taken with ``torch.autograd.grad`` and added to ``.grad`` by hand:
the KL is the same on every process, and a second ``backward`` through a DDP-wrapped
model would trip its gradient hooks.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup

from .adapter_model import BlobModel
from .kl_plan import AUTHORS
from .schema import settings
from .schema.types import Bool, Count, NonNegativeFloat, Positive, PositiveFloat
from .sharding import full, full_optimizer_state, is_sharded, load_optimizer_state

SCHEMES = ("authors", "elbo")


@settings
class OptimConfig:
    scheme: Literal[SCHEMES] = "authors"
    lr: PositiveFloat = 1e-4
    kl_lr: NonNegativeFloat = AUTHORS[
        "causal-lm"
    ].kl_lr  # the authors' LLM setting (kl_plan.AUTHORS)
    weight_decay: NonNegativeFloat = 0.0
    warmup_steps: Count = 0
    total_steps: Positive = 1000
    max_grad_norm: PositiveFloat | None = None
    adam_eps: PositiveFloat = 1e-8  # the authors' code: 1e-6
    # the authors' schedulers are prepared by Accelerate, which steps them once per process
    # per optimizer step: with P processes their LR reaches 0 after total_steps / P steps
    scheduler_steps_per_step: Positive = 1
    # False: the KL term moves only the std parameters G, never the means (whose KL
    # gradient is a weight decay M / beta^2: the pull that costs accuracy)
    kl_on_means: Bool = True


def decay_is_lost(lr: float, weight_decay: float, dtype: torch.dtype = torch.float32) -> bool:
    """Whether AdamW's decoupled decay does nothing to `dtype` weights at this peak LR: it
    multiplies them by 1 - lr*weight_decay, and below half an ulp of 1 that factor rounds to
    exactly 1 (fp32: lr*weight_decay <= 2**-25, e.g. MAP's 1e-5 at any lr <= 2.98e-3). The
    LR schedule only lowers lr, so no later step decays either."""
    if weight_decay <= 0:
        return False
    return bool(torch.tensor(1.0 - lr * weight_decay, dtype=dtype) == 1.0)


def _add_kl_grad(params: list[nn.Parameter], kl_term: torch.Tensor) -> None:
    needs = [p for p in params if p.requires_grad]
    if not needs or not kl_term.requires_grad:
        return
    grads = torch.autograd.grad(kl_term, needs, allow_unused=True)
    for p, g in zip(needs, grads, strict=True):
        if g is None:
            continue
        g = g.to(p.dtype)
        p.grad = g if p.grad is None else p.grad + g


class AdapterOptimizer:
    """Owns the optimizers and LR schedules of one run; the loop calls `step` once per
    optimizer step, after the NLL gradients have been accumulated into `.grad`."""

    def __init__(self, model: BlobModel, config: OptimConfig) -> None:
        self.model = model
        self.config = config
        groups = model.parameter_groups()
        self.mean_params, self.std_params = groups["mean"], groups["std"]
        if config.scheme == "authors" and model.is_bayesian:
            self.main = torch.optim.AdamW(
                self.mean_params, lr=config.lr, weight_decay=config.weight_decay,
                eps=config.adam_eps,
            )  # fmt: skip
            all_params = self.mean_params + self.std_params
            self.kl_opt = torch.optim.SGD(all_params, lr=config.kl_lr) if all_params else None
        else:
            self.main = torch.optim.AdamW(
                self.mean_params + self.std_params, lr=config.lr, weight_decay=config.weight_decay,
                eps=config.adam_eps,
            )  # fmt: skip
            self.kl_opt = None
        self.schedulers = [
            get_linear_schedule_with_warmup(opt, config.warmup_steps, config.total_steps)
            for opt in self.optimizers
        ]

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.main, self.kl_opt) if o is not None]

    def zero_grad(self) -> None:
        for p in self.mean_params + self.std_params:
            p.grad = None

    def _clip(self, params: list[nn.Parameter]) -> None:
        if self.config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)

    def step(self, kl_weight: float) -> torch.Tensor:
        """Apply one optimizer step; returns the (unweighted) KL used, float64."""
        kl_params = (self.mean_params if self.config.kl_on_means else []) + self.std_params
        if self.kl_opt is None:
            kl = self.model.kl()
            if kl_weight:
                _add_kl_grad(kl_params, (kl * kl_weight).float())
            self._clip(self.mean_params + self.std_params)
            self.main.step()
        else:
            std_nll_grads = [p.grad for p in self.std_params]
            self._clip(self.mean_params)
            self.main.step()  # AdamW on the NLL: means only
            for p in self.mean_params:
                p.grad = None
            for p, g in zip(self.std_params, std_nll_grads, strict=True):
                p.grad = g  # G keeps its NLL gradient for the SGD step
            kl = self.model.kl()  # after the AdamW step, as the authors' loop does
            _add_kl_grad(kl_params, (kl * kl_weight).float())
            self.kl_opt.step()
        for sched in self.schedulers:
            for _ in range(self.config.scheduler_steps_per_step):
                sched.step()
        self.zero_grad()
        return full(kl).detach()

    @property
    def sharded(self) -> bool:
        return any(is_sharded(p) for p in self.mean_params + self.std_params)

    def state_dict(self) -> dict:
        """Optimizer and schedule state; under sharding=fsdp with whole tensors (a
        collective: every process calls it)."""
        if self.sharded:
            optimizers = [full_optimizer_state(o) for o in self.optimizers]
        else:
            optimizers = [o.state_dict() for o in self.optimizers]
        return {
            "optimizers": optimizers,
            "schedulers": [s.state_dict() for s in self.schedulers],
            "sharded": self.sharded,
        }

    def load_state_dict(self, state: dict) -> None:
        # whole tensors either way: a sharded run's checkpoint resumes unsharded and back
        for opt, s in zip(self.optimizers, state["optimizers"], strict=True):
            if self.sharded:
                load_optimizer_state(opt, s)
            else:
                opt.load_state_dict(s)
        for sched, s in zip(self.schedulers, state["schedulers"], strict=True):
            sched.load_state_dict(s)
