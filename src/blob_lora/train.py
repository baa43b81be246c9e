"""The training loop (Accelerate), evaluation, checkpoints and resume.

Data flows one way: config -> model + adapters -> task batches -> method -> predictions
-> metrics. The loop owns the order of examples (a seeded stream of per-epoch
permutations, sliced per process), so a resumed run sees exactly the batches, noise
and dropout draws the uninterrupted run would have seen.

The pieces live in their own modules - run_setup (set-up), fit (the optimization loop),
run_checkpoints, evaluation, run_files, batches - and `Runner` puts them together.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import accelerate.utils
import torch
from accelerate import Accelerator

from .adapter_io import CONFIG_FILE, load_adapter_weights, save_adapter
from .batches import GROUP_BATCHES, example_stream, grouped_batch
from .checkpoint import latest_checkpoint
from .config import AdapterConfig
from .errors import BlobLoraError, ConfigError
from .evaluation import EvalMixin, _mutual_information
from .fit import FitMixin, Scorer, TrainingDivergedError
from .gen_evaluation import GenerationEvalMixin
from .kl_plan import KLPlan, init_sigma_mean
from .methods import get_method
from .methods.base import PostTrainContext
from .posterior_stats import health_line, health_warnings, sigma_stats
from .precision import slow_precision_warning
from .run_checkpoints import CheckpointMixin
from .run_config import RunConfig
from .run_files import (
    KL_PLAN,
    LOCK_FILE,
    RUN_CONFIG,
    SIGMA_LOG,
    WRITE_ERRNOS,
    RunDir,
    _as_saved,
    _is_write_failure,
    _jsonl_to_csv,
    _lock_run_dir,
    _plan_dict,
    _tensorboard,
    _truncate_log,
    _write_failure_reason,
    _write_json,
    dataset_label,
    ood_split,
)
from .run_setup import (
    Setup,
    SetupMixin,
    _check_label_set,
    build_setup,
    check_compatible,
    check_method_settings,
    head_adapter_config,
    resolve_task_kind,
)

__all__ = [  # Runner, and the names other code has imported from here since before the split
    "GROUP_BATCHES",
    "KL_PLAN",
    "LOCK_FILE",
    "RUN_CONFIG",
    "SIGMA_LOG",
    "WRITE_ERRNOS",
    "Runner",
    "Scorer",
    "Setup",
    "TrainingDivergedError",
    "_as_saved",
    "_check_label_set",
    "_is_write_failure",
    "_jsonl_to_csv",
    "_lock_run_dir",
    "_mutual_information",
    "_plan_dict",
    "_tensorboard",
    "_truncate_log",
    "_write_failure_reason",
    "_write_json",
    "build_setup",
    "check_compatible",
    "check_method_settings",
    "dataset_label",
    "example_stream",
    "grouped_batch",
    "head_adapter_config",
    "ood_split",
    "resolve_task_kind",
]


class Runner(SetupMixin, FitMixin, CheckpointMixin, EvalMixin, GenerationEvalMixin):
    """Train, checkpoint, resume and evaluate one run."""

    def __init__(self, cfg: RunConfig, accelerator: Accelerator | None = None) -> None:
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        if accelerator is None:
            _refuse_accelerate_mixed_precision()
            accelerator = Accelerator(
                gradient_accumulation_steps=cfg.grad_accum,
                cpu=no_accelerator(),
                mixed_precision="no",  # ours is `precision`: accelerate's would scale losses
            )
        self.acc = accelerator
        if (slow := slow_precision_warning(cfg.precision, accelerator.device)) is not None:
            if accelerator.is_main_process:
                print(slow, file=sys.stderr, flush=True)
        self.setup: Setup | None = None
        self.trained_steps = cfg.max_steps
        self._train_sizes: list[int] | None = None  # text sizes, for group_by_length
        self.kl_plan: KLPlan | None = None
        self._lock: Any = None  # the run folder's lock, held while this runner lives
        self._same_as_mean: list[int] = []  # N whose predictions equal N=0's (final eval)

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

    # -- training ---------------------------------------------------------------------------
    def train(self, resume: bool = False) -> dict[str, Any]:
        """Train (every ensemble member), run the method's post-hoc step, evaluate."""
        if resume and (done := self.finished()) is not None:
            return done
        try:
            return self._train(resume)
        except Exception as err:
            if not _is_write_failure(err):
                raise
            last = latest_checkpoint(RunDir(self.out).checkpoints)
            fix = (
                f"the last good checkpoint is {last}; free space or fix permissions, then run "
                "again with --resume"
                if last
                else "nothing was saved yet; choose a writable output_dir (or free space / fix "
                "permissions) and run again"
            )
            raise BlobLoraError(
                f"cannot write in {self.out}: {_write_failure_reason(err)}; {fix}"
            ) from err
        finally:
            if self._lock is not None:  # released on every exit, errors and interrupts too
                self._lock.close()
                self._lock = None

    def _train(self, resume: bool) -> dict[str, Any]:
        resume = self.prepare(resume)
        cfg, setup = self.cfg, self.setup
        if not setup.train_examples:
            raise ConfigError(f"dataset {cfg.dataset!r} split {cfg.train_split!r} is empty")

        def train_part(part: str, seed: int, data_seed: int) -> None:
            files = RunDir(self.out).part(part)
            if part and files.adapter.is_dir():
                load_adapter_weights(setup.model, files.adapter)  # a finished member
            elif cfg.max_steps == 0 and cfg.init_from:
                pass  # post-hoc only: the adapter comes trained
            else:
                self._fit(files.root, resume, seed, data_seed)

        setup.method.train_adapters(setup.model, train_part, cfg.seed)
        with self.autocast():  # Laplace turns it off for its fit; TFB's search runs in it
            setup.model = setup.method.post_train(setup.model, self.post_train_context())
        if "" in setup.method.parts():  # the run's own adapter
            state = setup.model.adapter_state_dict()  # every process: gathers shards
            if self.acc.is_main_process:
                save_adapter(
                    setup.model,
                    RunDir(self.out).adapter,
                    extra={"run": cfg.to_dict(), "steps": self.trained_steps},
                    state=state,
                )
        self.acc.wait_for_everyone()
        results = self.evaluate()
        return {"steps": self.trained_steps, "results": results, **self.posterior_health(results)}

    def posterior_health(self, results: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The sigma line and the warnings a Bayesian run ends with (empty otherwise); with
        the final results, the line also says how much the largest N's samples disagree."""
        stats = sigma_stats(self.setup.model)
        if stats is None:
            return {}
        trained = self.cfg.max_steps > 0 and self.setup.method.posterior_trained
        sigma0 = init_sigma_mean(self.setup.model.adapter_config.init_std_eps) if trained else None
        return {
            "posterior": health_line(stats, sigma0, _largest_n_mi(results or [], self.cfg.dataset)),
            "warnings": health_warnings(stats, sigma0, self._same_as_mean),
        }

    def load_finished(self, with_eval: bool = True, samples: list[int] | None = None) -> None:
        """Rebuild a finished run's predicting model from its directory (`blob eval`):
        its adapter (or every ensemble member's), and a post-hoc fit that is not saved
        with the adapter (Laplace) redone on the training data."""
        from .adapter_io import read_adapter_config

        cfg = self.cfg
        method = get_method(cfg.method, cfg.method_options)
        dirs = {part: RunDir(self.out).part(part).adapter for part in method.parts()}
        for d in dirs.values():
            if not (d / CONFIG_FILE).is_file():
                raise ConfigError(f"{self.out} is not a finished {cfg.method} run: {d} is missing")
        meta = read_adapter_config(next(iter(dirs.values())))
        saved = AdapterConfig.from_saved(meta["config"])
        refit = not method.posterior_saved
        self.setup = build_setup(cfg, with_train=refit, adapter_config=saved, with_eval=with_eval)
        model = self.setup.model
        model.to(self.acc.device)
        method.load_adapters(model, lambda part: load_adapter_weights(model, dirs[part]))
        self.trained_steps = int(meta.get("steps", cfg.max_steps))
        if refit:
            with self.autocast():
                self.setup.model = method.post_train(model, self.post_train_context(samples))

    def post_train_context(self, samples: list[int] | None = None) -> PostTrainContext:
        cfg, setup = self.cfg, self.setup
        examples = setup.train_examples
        gen = torch.Generator().manual_seed(cfg.seed)
        anchor = torch.randperm(len(examples), generator=gen)[: cfg.anchor_size].tolist()

        def class_logits(batch: dict[str, Any]) -> torch.Tensor:
            # no autocast of its own: the caller's region decides (Laplace's fit is fp32)
            return setup.task.class_logits(setup.model.model, batch).float()

        def batches(indices: list[int]):
            for i in range(0, len(indices), cfg.eval_batch_size):
                chunk = [examples[j] for j in indices[i : i + cfg.eval_batch_size]]
                yield self._to_device(setup.task.collate(chunk))

        def calib_batches():
            held = setup.calib_examples
            for i in range(0, len(held), cfg.eval_batch_size):
                yield self._to_device(setup.task.collate(held[i : i + cfg.eval_batch_size]))

        return PostTrainContext(
            train_batches=lambda: batches(list(range(len(examples)))),
            anchor_batches=lambda: batches(anchor),
            class_logits=class_logits,
            n_train=len(examples),
            seed=cfg.seed,
            calib_batches=calib_batches,
            n_calib=len(setup.calib_examples),
            eval_samples=tuple(self.eval_sample_list(samples)),
        )


def _largest_n_mi(rows: list[dict[str, Any]], dataset: Any) -> tuple[int, float] | None:
    """(N, mean mutual information) of the largest sampled N on the training task's set."""
    label = dataset_label(dataset)
    sampled = [r for r in rows if r.get("dataset") == label and "mean_mi" in r]
    if not sampled:
        return None
    top = max(sampled, key=lambda r: r["n_samples"])
    return top["n_samples"], top["mean_mi"]


def _refuse_accelerate_mixed_precision() -> None:
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
