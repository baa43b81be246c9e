"""What every part of a run reads: its settings, the processes, the model set-up and its
folder, in one plain object handed to each part (`prepare`, `fit`, the checkpoints, the
evaluators), so what a part uses shows in its signature."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import accelerate.utils
import torch
from accelerate import Accelerator

from ..errors import ConfigError
from ..kl_plan import KLPlan
from .config import RunConfig
from .files import RunDir
from .precision import slow_precision_warning
from .setup import Setup


@dataclass
class RunContext:
    """One run's settings and state, filled in as the run goes (`setup` by `prepare` or
    `load_finished`, `kl_plan` before training, `same_as_mean` by the final evaluation)."""

    cfg: RunConfig
    acc: Accelerator
    setup: Setup | None = None
    trained_steps: int = 0
    kl_plan: KLPlan | None = None
    lock: Any = None  # the run folder's lock, held while the run lives
    same_as_mean: list[int] = field(default_factory=list)  # final N equal to N=0

    @property
    def out(self) -> Path:
        return Path(self.cfg.output_dir)

    @property
    def files(self) -> RunDir:
        return RunDir(self.out)

    @property
    def main(self) -> bool:
        """This process writes files and prints (one of them, under `accelerate launch`)."""
        return self.acc.is_main_process

    def say(self, text: str, error: bool = False) -> None:
        """A line on stdout (or stderr) from the main process only."""
        if self.main:
            print(text, file=sys.stderr if error else sys.stdout, flush=True)

    def autocast(self) -> torch.autocast:
        """bf16 autocast of every forward when `precision=bf16`: adapters and optimizer
        state stay fp32, matmuls run in bf16 (about 2x faster on AMX CPUs and GPUs).

        The cast cache is off: it keys on the parameter, so a method that swaps weights in
        place inside one prediction (the ensemble's members) would get the first member's
        bf16 copy for all of them. Only the small adapter tensors are re-cast."""
        return torch.autocast(
            device_type=self.acc.device.type,
            dtype=torch.bfloat16,
            enabled=self.cfg.precision == "bf16",
            cache_enabled=False,
        )

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        dev = self.acc.device
        return {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batch.items()}

    def release(self) -> None:
        """Let go of the run folder's lock (on every exit, errors and interrupts too)."""
        if self.lock is not None:
            self.lock.close()
            self.lock = None


def new_context(cfg: RunConfig, accelerator: Accelerator | None = None) -> RunContext:
    """A run's context on this process: its own Accelerator unless one is given."""
    if accelerator is None:
        refuse_accelerate_mixed_precision()
        accelerator = Accelerator(
            gradient_accumulation_steps=cfg.grad_accum,
            cpu=no_accelerator(),
            mixed_precision="no",  # ours is `precision`: accelerate's would scale losses
        )
    ctx = RunContext(cfg, accelerator, trained_steps=cfg.max_steps)
    if (slow := slow_precision_warning(cfg.precision, accelerator.device)) is not None:
        ctx.say(slow, error=True)
    return ctx


def refuse_accelerate_mixed_precision() -> None:
    """`accelerate launch` passes its config's mixed_precision in the environment; taken
    silently it would autocast training only (and scale fp16 losses our optimizers never
    unscale), so it is an error with the fix."""
    asked = os.environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if asked not in ("no", ""):
        raise ConfigError(
            f"accelerate asks for mixed_precision={asked}; blob-lora sets it itself: launch "
            "with --mixed_precision no and set precision=bf16 in the run config instead"
        )


_ACCELERATOR_CHECKS = (
    "is_cuda_available",
    "is_mps_available",
    "is_xpu_available",
    "is_npu_available",
    "is_mlu_available",
    "is_musa_available",
)


def no_accelerator() -> bool:
    """Accelerate runs several CPU processes as one job (gloo) only when told `cpu=True`;
    without it, `accelerate launch --num_processes 2` on a machine with no accelerator
    gives two independent single-process runs."""
    return not any(getattr(accelerate.utils, name)() for name in _ACCELERATOR_CHECKS)
