"""The KL re-weighting schedule, the KL clock, and a budget-aware plan built on them.

`KLSchedule`: how much of the KL term each optimizer step carries.

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

The plan.

Under the authors' optimizer split the posterior std moves almost only through the SGD
step on ``pi * KL`` (AdamW never touches G). Per element, near the init, that step moves
``sigma = G^2`` by about ``4 * kl_lr * pi * f`` (f: the LR factor), so what a run does
to sigma is set by its *clock*, ``kl_lr * sum_t pi_t f_t``, whatever the cycle length:
``sigma ~= beta * tanh(4 * clock / beta + atanh(sigma0 / beta))``. The same clock is a
weight decay on the means (``d mu = -clock * mu / beta^2``).

The authors' runs (their scripts: RoBERTa on 4 GPUs x batch 32, Llama on 2 GPUs x batch
4, 5000 scheduler steps with 6% warmup, schedulers stepping once per process) had a
clock of 0.03-0.08, which takes sigma most of the way to the prior. A run of a few
hundred steps with their M and kl_lr has a clock 10-100x smaller: sigma stays at its
init and N samples predict exactly as N=0.

``plan_budget`` gives a run of any length the authors' clock for the same dataset size
times ``clock_scale`` (the run config's default is 0.2: on dev splits the full clock
collapsed the posterior of a 1000-step run - its pull on the means wins in so few Adam
steps - while a fifth had the lowest NLL on MRPC and TREC among 0.05, 0.1 and 0.2;
experiments/results/schedule_check.md and sensitivity.md), in as many cycles as the authors had
(fewer if the run is too short for cycles of ``MIN_CYCLE`` steps), all of them ending before the LR schedule's
tail (factor < ``TAIL``), where a KL step would barely count: ``kl_lr`` is solved for.
No single KL step may exceed ``MAX_STEP`` times the authors' largest (``kl_lr * pi * f``):
near the init one such step already multiplies G several times, and a much larger one
overshoots the prior and oscillates. A run too short for the clock under that cap gets
less of it, and the plan says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .errors import ConfigError
from .schema import settings
from .schema.types import Positive, PositiveFloat

KINDS = ("blob", "uniform", "elbo", "none")


@settings(frozen=True)
class KLSchedule:
    kind: Literal[KINDS]
    n_train: Positive
    global_batch: Positive
    gamma: PositiveFloat = 8.0
    cycle: Positive | None = None  # M set directly (e.g. to fit whole cycles in a short run)
    cycles: Positive | None = None  # stop after this many whole cycles (None: never)

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


PLANS = ("budget", "authors")
MIN_CYCLE = 10  # steps: the re-weighting's weights (1/2, 1/4, ...) need room to decay
TAIL = 0.25  # no cycle ends where the LR factor is below this
MAX_STEP = 2.0  # no KL step larger than this x the authors' largest


@dataclass(frozen=True)
class ReferenceBudget:
    """One of the authors' set-ups, as their run scripts launch it."""

    label: str
    processes: int
    batch: int  # per process
    kl_lr: float
    scheduler_steps: int = 5000  # --max-train-steps; each optimizer step advances P of them
    warmup_ratio: float = 0.06
    gamma: float = 8.0

    def cycle_length(self, n_train: int) -> int:
        return max(1, int(100 * n_train ** (math.pi / self.gamma) / self.processes / self.batch))

    @property
    def optimizer_steps(self) -> int:
        return self.scheduler_steps // self.processes


AUTHORS = {
    "encoder": ReferenceBudget("RoBERTa-base, 4 GPUs x batch 32", 4, 32, kl_lr=0.002),
    "causal-lm": ReferenceBudget("Llama2-7B, 2 GPUs x batch 4", 2, 4, kl_lr=0.01),
}


def lr_factor(step: int, total: int, warmup: int) -> float:
    """transformers' linear schedule with warmup, at scheduler step `step`."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def _authors_weight(step: int, m: int) -> float:
    """The authors' pi at their step counter `step` (0-based): i = step % M, or M."""
    i = step % m or m
    return 2.0 ** (i - m - 1) / (1.0 - 2.0 ** (-(m + 1)))


def _reference_steps(ref: ReferenceBudget, n_train: int) -> list[float]:
    """pi_t * f_t of every optimizer step of the authors' run."""
    m = ref.cycle_length(n_train)
    warmup = int(ref.warmup_ratio * ref.scheduler_steps)
    return [
        _authors_weight(t, m) * lr_factor(ref.processes * t, ref.scheduler_steps, warmup)
        for t in range(ref.optimizer_steps)
    ]


def reference_clock(ref: ReferenceBudget, n_train: int) -> tuple[float, int]:
    """(clock, whole cycles) of the authors' run on a training set of `n_train`."""
    steps = _reference_steps(ref, n_train)
    return ref.kl_lr * sum(steps), ref.optimizer_steps // ref.cycle_length(n_train)


def reference_max_step(ref: ReferenceBudget, n_train: int) -> float:
    """The largest kl_lr * pi_t * f_t of the authors' run."""
    return ref.kl_lr * max(_reference_steps(ref, n_train))


def _steps(schedule: KLSchedule, total_steps: int, warmup_steps: int) -> list[float]:
    return [
        schedule.weight(t) * lr_factor(t, total_steps, warmup_steps) for t in range(total_steps)
    ]


def clock(schedule: KLSchedule, kl_lr: float, total_steps: int, warmup_steps: int) -> float:
    """kl_lr * sum_t pi_t f_t over the run's optimizer steps (our schedulers step once per
    optimizer step, whatever the number of processes)."""
    return kl_lr * sum(_steps(schedule, total_steps, warmup_steps))


def simulate_kl_only(
    schedule: KLSchedule,
    kl_lr: float,
    total_steps: int,
    warmup_steps: int,
    prior_std: float,
    sigma0: float,
) -> tuple[float, float]:
    """(final sigma, factor on |mu|) of one element moved by the KL's SGD steps alone (the
    NLL gradient on G is tiny under the split; AdamW restores mu against the shrink)."""
    steps = _steps(schedule, total_steps, warmup_steps)
    return _kl_only([kl_lr * s for s in steps], prior_std, sigma0)


def _kl_only(step_sizes: list[float], prior_std: float, sigma0: float) -> tuple[float, float]:
    """simulate_kl_only over the given SGD step sizes (kl_lr * pi_t * f_t)."""
    g, shrink = math.sqrt(sigma0), 1.0
    for step in step_sizes:
        if step == 0.0:
            continue
        g -= step * (2.0 * g**3 / prior_std**2 - 2.0 / g)  # d KL / d G, sigma = G^2
        shrink *= max(0.0, 1.0 - step / prior_std**2)
    return g * g, shrink


def reference_prediction(
    ref: ReferenceBudget, n_train: int, prior_std: float, sigma0: float
) -> tuple[float, float]:
    """(final sigma, factor on |mu|) that the authors' own run would reach under the KL alone."""
    steps = _reference_steps(ref, n_train)
    return _kl_only([ref.kl_lr * s for s in steps], prior_std, sigma0)


def init_sigma_mean(init_std_eps: float) -> float:
    """E[G^2] for G ~ U(eps/sqrt(2), eps): the mean posterior std at init."""
    a, b = init_std_eps / math.sqrt(2.0), init_std_eps
    return (a * a + a * b + b * b) / 3.0


@dataclass(frozen=True)
class KLPlan:
    """The schedule a run uses, and what it predicts (printed at the start of a run)."""

    kind: str  # "budget" or "authors"
    schedule: KLSchedule
    kl_lr: float
    clock: float
    target_clock: float | None
    reference: str | None
    reference_cycles: int | None
    sigma0: float
    predicted_sigma: float
    mean_shrink: float
    prior_std: float
    capped: bool = False  # kl_lr lowered so no KL step exceeds MAX_STEP x the authors'
    optim_scheme: str = "authors"  # elbo: AdamW moves G, so kl_lr and the prediction do not apply
    clock_scale: float = 1.0  # target_clock is this times the authors' clock

    @property
    def predicts_sigma(self) -> bool:
        """The sigma prediction simulates the authors' SGD on G; under one AdamW (elbo)
        sigma moves at Adam's rate, whatever the KL weight."""
        return self.optim_scheme == "authors"

    def describe(self) -> str:
        m = self.schedule.cycle_length
        k = self.schedule.cycles
        where = f"{k} cycles of {m} steps (KL off after step {k * m})" if k else f"M={m}"
        if not self.predicts_sigma:
            return (
                f"KL schedule {self.schedule.kind}: {where}; optim_scheme={self.optim_scheme}: "
                "one AdamW moves every parameter, G included, on NLL + weight x KL, so kl_lr "
                f"is unused and sigma is not predicted (init {self.sigma0:.4f}, prior "
                f"{self.prior_std:g})"
            )
        text = f"KL plan ({self.kind}): {where}, kl_lr {self.kl_lr:.4g}, clock {self.clock:.4f}"
        if self.target_clock is not None:
            authors = self.target_clock / self.clock_scale
            scaled = "" if self.clock_scale == 1 else f"{self.clock_scale:g} x "
            text += (
                f" (target {scaled}the authors' clock {authors:.4f}: {self.reference}, "
                f"{self.reference_cycles} cycles)"
            )
        if self.capped:
            text += (
                f"; capped: the run is too short for that clock without KL steps over "
                f"{MAX_STEP:g}x the authors' largest"
            )
        return text + (
            f"; predicted sigma {self.sigma0:.4f} -> {self.predicted_sigma:.4f} "
            f"(prior {self.prior_std:g}); the KL alone would shrink |M| to "
            f"{self.mean_shrink:.2f}x"
        )


def plan_budget(
    n_train: int,
    global_batch: int,
    total_steps: int,
    warmup_steps: int,
    family: str,
    prior_std: float,
    sigma0: float,
    clock_scale: float = 1.0,
    kind: str = "blob",
) -> KLPlan:
    """The authors' clock for this dataset size, in a run of `total_steps`."""
    ref = AUTHORS[family]
    target, ref_cycles = reference_clock(ref, n_train)
    target *= clock_scale
    # cycles are laid from step 0; the last may end at the last step before the tail
    usable = 1 + max(
        (
            t
            for t in range(warmup_steps, total_steps)
            if lr_factor(t, total_steps, warmup_steps) >= TAIL
        ),
        default=0,
    )
    cycles = max(1, min(ref_cycles, usable // MIN_CYCLE))
    length = max(1, usable // cycles)
    schedule = KLSchedule(kind, n_train, global_batch, cycle=length, cycles=cycles)
    steps = _steps(schedule, total_steps, warmup_steps)
    if sum(steps) <= 0.0:
        raise ConfigError(
            f"max_steps={total_steps} leaves no step where the KL can act; train longer"
        )
    kl_lr = target / sum(steps)
    cap = MAX_STEP * reference_max_step(ref, n_train) / max(steps)
    capped = kl_lr > cap
    kl_lr = min(kl_lr, cap)
    sigma, shrink = simulate_kl_only(schedule, kl_lr, total_steps, warmup_steps, prior_std, sigma0)
    return KLPlan(
        "budget", schedule, kl_lr, kl_lr * sum(steps), target, ref.label, ref_cycles, sigma0,
        sigma, shrink, prior_std, capped, clock_scale=clock_scale,
    )  # fmt: skip


def plan_authors(
    schedule: KLSchedule,
    kl_lr: float,
    total_steps: int,
    warmup_steps: int,
    prior_std: float,
    sigma0: float,
) -> KLPlan:
    """The given (authors') M and kl_lr, with what they predict for this run."""
    sigma, shrink = simulate_kl_only(schedule, kl_lr, total_steps, warmup_steps, prior_std, sigma0)
    return KLPlan(
        "authors", schedule, kl_lr, clock(schedule, kl_lr, total_steps, warmup_steps), None,
        None, None, sigma0, sigma, shrink, prior_std,
    )  # fmt: skip
