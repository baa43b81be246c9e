"""The optimization loop of one adapter: its parts are the sharding set-up, the optimizer,
the batches, one step, and the log; `fit` runs them with checkpoints and divergence checks.

The loop owns the order of examples (a seeded stream of per-epoch permutations, sliced per
process), so a resumed run sees exactly the batches, noise and dropout draws the
uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..adapter_io import save_adapter
from ..adapter_model import BlobModel
from ..data.batching import example_stream, grouped_batch
from ..errors import BlobLoraError
from ..kl_plan import KLPlan
from ..optim import AdapterOptimizer, OptimConfig, decay_is_lost
from ..posterior_stats import plot_sigma, sigma_stats
from ..sharding import average_replicated_grads, full, is_sharded, shard_model
from ..tasks.base import train_loss, train_outputs
from .checkpoint import latest_checkpoint, restore_run_checkpoint, save_run_checkpoint
from .context import RunContext
from .files import RunDir, dataset_label, jsonl_to_csv, tensorboard_writer, truncate_log
from .prepare import make_kl_plan

# evaluate_mean(step) -> the N=0 results rows at that step (eval_every)
EvaluateMean = Callable[[int], list[dict[str, Any]]]


class TrainingDivergedError(BlobLoraError):
    """The loss became NaN or infinite."""


class Scorer(nn.Module):
    """Batch -> what the loss is computed from (class logits, or a generation task's
    target-token logits), as a module so DDP sees the forward of the whole step."""

    def __init__(self, model: BlobModel, task: Any) -> None:
        super().__init__()
        self.blob = model
        self.task = task

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        return train_outputs(self.task, self.blob.model, batch)


def fit(
    ctx: RunContext,
    run_dir: Path,
    resume: bool,
    seed: int,
    data_seed: int | None = None,
    evaluate_mean: EvaluateMean | None = None,
) -> int:
    """Train one adapter to `max_steps`; checkpoints and logs under `run_dir`. `seed`
    drives the noise and dropout streams, `data_seed` the order of examples."""
    cfg, blob = ctx.cfg, ctx.setup.model
    plan = ctx.kl_plan or make_kl_plan(ctx)
    prepare_sharding(ctx)
    optimizer = build_optimizer(ctx, plan)
    scorer = Scorer(blob, ctx.setup.task)
    if cfg.sharding != "fsdp":  # FSDP reduces the gradients itself; DDP wraps the rest
        scorer = ctx.acc.prepare(scorer)
    files = RunDir(run_dir)
    if ctx.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    seed_process(ctx, seed)
    step = _start_step(ctx, files, resume, optimizer)
    batches = TrainBatches(ctx, seed if data_seed is None else data_seed)
    blob.train()
    log = FitLog(ctx, files, step)
    try:
        while step < cfg.max_steps:
            weight = plan.schedule.weight(step)
            nll, correct, seen, kl = train_step(ctx, scorer, optimizer, batches, step, weight)
            step += 1
            log.step(step, nll, correct, seen, kl, weight, optimizer)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
                if evaluate_mean is not None:
                    log.evaluation(step, evaluate_mean(step))
                blob.train()
            if cfg.save_every and step % cfg.save_every == 0 and step < cfg.max_steps:
                _check_finite_weights(ctx, files, step)  # never save what cannot resume
                save_run_checkpoint(ctx, files.checkpoints, step, optimizer)
    finally:
        log.close()  # on errors too: an error's line must not be glued onto the bar's
    _finish(ctx, run_dir, files, step)
    return step


def prepare_sharding(ctx: RunContext) -> None:
    """sharding=fsdp: shard the model over the processes, once, before the optimizer is
    built (it holds the shards); with one process there is nothing to shard over."""
    cfg, acc, blob = ctx.cfg, ctx.acc, ctx.setup.model
    if cfg.sharding != "fsdp":
        return
    if acc.num_processes == 1:
        ctx.say(
            "sharding=fsdp with one process: nothing to shard over, training unsharded "
            "(start it with `accelerate launch --num_processes N -m blob_lora.cli train`)",
            error=True,
        )
    elif not any(is_sharded(p) for p in blob.parameters()):
        blocks = shard_model(blob.model)
        ctx.say(
            f"sharding=fsdp: {blocks} blocks and the body holding them sharded over "
            f"{acc.num_processes} process(es); the output head whole on each"
        )


def build_optimizer(ctx: RunContext, plan: KLPlan) -> AdapterOptimizer:
    """The run's two optimizers (or one, under optim_scheme=elbo) and their schedules;
    a weight decay that rounds away in fp32 is said so."""
    cfg, method = ctx.cfg, ctx.setup.method
    weight_decay = next((w for w in (method.weight_decay, cfg.weight_decay) if w is not None), 0.0)
    if decay_is_lost(cfg.lr, weight_decay):
        ctx.say(
            f"warning: weight_decay={weight_decay:g} at lr={cfg.lr:g} does nothing: AdamW "
            f"multiplies the fp32 adapter weights by 1 - lr*weight_decay, which rounds to "
            "exactly 1, so this run trains bit for bit as with weight_decay=0 (the authors' "
            "MAP has the same property); for a prior that acts, use method=mle with "
            f"weight_decay >= {3e-8 / cfg.lr:.1g}",
            error=True,
        )
    return AdapterOptimizer(
        ctx.setup.model,
        OptimConfig(
            scheme=cfg.optim_scheme,
            lr=cfg.lr,
            kl_lr=plan.kl_lr,
            weight_decay=weight_decay,
            warmup_steps=int(cfg.warmup_ratio * cfg.max_steps),
            total_steps=cfg.max_steps,
            max_grad_norm=cfg.max_grad_norm,
            adam_eps=cfg.adam_eps,
            scheduler_steps_per_step=ctx.acc.num_processes if cfg.lr_schedule_per_process else 1,
            kl_on_means=cfg.kl_on_means,
        ),
    )


@dataclass
class TrainBatches:
    """The micro-batches of training on this process: batch `index` of the seeded stream
    (re-cut by length under group_by_length), this process's slice of it, on its device."""

    ctx: RunContext
    data_seed: int
    _sizes: list[int] | None = field(default=None, repr=False)

    def batch(self, step: int, micro: int) -> dict[str, Any]:
        cfg, acc, examples = self.ctx.cfg, self.ctx.acc, self.ctx.setup.train_examples
        per_micro = cfg.batch_size * acc.num_processes
        index = step * cfg.grad_accum + micro
        if cfg.group_by_length:
            if self._sizes is None:
                from ..data import text_size

                self._sizes = [text_size(e) for e in examples]
            indices = grouped_batch(self._sizes, self.data_seed, index, per_micro)
        else:
            indices = example_stream(len(examples), self.data_seed, index * per_micro, per_micro)
        mine = indices[
            acc.process_index * cfg.batch_size : (acc.process_index + 1) * cfg.batch_size
        ]
        return self.ctx.to_device(self.ctx.setup.task.collate([examples[i] for i in mine]))


def train_step(
    ctx: RunContext,
    scorer: nn.Module,
    optimizer: AdapterOptimizer,
    batches: TrainBatches,
    step: int,
    kl_weight: float,
) -> tuple[float, int, int, float]:
    """One optimizer step over grad_accum micro-batches: (mean NLL, correct, seen, KL),
    summed over processes; a non-finite loss stops every process together."""
    cfg, acc = ctx.cfg, ctx.acc
    nll_sum, correct, seen = 0.0, 0, 0
    for micro in range(cfg.grad_accum):
        batch = batches.batch(step, micro)
        with acc.accumulate(scorer):
            with ctx.autocast():
                outputs = scorer(batch)
            nll, n_correct, n_seen = train_loss(ctx.setup.task, outputs, batch)
            if not _all_finite(ctx, nll):
                last = latest_checkpoint(RunDir(ctx.out).checkpoints)
                raise TrainingDivergedError(
                    f"loss is not finite at step {step + 1} ({nll.item()}); the last good "
                    f"checkpoint is {last or 'none'}; lower lr (now {cfg.lr}) or set "
                    "max_grad_norm"
                )
            acc.backward(nll)
        stats = torch.stack(
            [nll.detach().float(), n_correct.float(), n_seen.float().to(nll.device)]
        )
        if acc.num_processes > 1:
            stats = acc.reduce(stats, reduction="sum")
            stats[0] = stats[0] / acc.num_processes
        nll_sum += stats[0].item() / cfg.grad_accum
        correct += int(stats[1].item())
        seen += int(stats[2].item())
    if cfg.sharding == "fsdp" and acc.num_processes > 1:
        average_replicated_grads(ctx.setup.model)  # the head's: FSDP reduces only its shards
    kl = optimizer.step(kl_weight)
    return nll_sum, correct, seen, float(kl)


class FitLog:
    """What a step leaves behind: the progress bar, metrics.jsonl (and TensorBoard), the
    per-layer sigma log of a Bayesian adapter, and the eval_every rows."""

    def __init__(self, ctx: RunContext, files: RunDir, step: int) -> None:
        cfg = ctx.cfg
        self.ctx, self.files = ctx, files
        self.sigma_every = max(1, cfg.max_steps // 50)
        self.recent: list[float] = []
        self.start = time.time()
        self.bar = tqdm(
            total=cfg.max_steps,
            initial=step,
            disable=not ctx.main,
            desc=f"{cfg.method} {dataset_label(cfg.dataset)}",
            dynamic_ncols=True,
        )
        self.board = tensorboard_writer(files.root) if ctx.main else None

    def step(
        self, step: int, nll: float, correct: int, seen: int, kl: float, weight: float,
        optimizer: AdapterOptimizer,
    ) -> None:  # fmt: skip
        ctx, cfg = self.ctx, self.ctx.cfg
        self.recent = (self.recent + [correct / max(seen, 1)])[-20:]
        row = {
            "step": step,
            "nll": nll,
            "kl": kl,
            "kl_weight": weight,
            "train_acc": sum(self.recent) / len(self.recent),
            "lr": optimizer.schedulers[0].get_last_lr()[0],
            "elapsed_s": time.time() - self.start,
        }
        per_layer = step % self.sigma_every == 0 or step == cfg.max_steps
        bayes = sigma_stats(ctx.setup.model, per_layer=per_layer)
        if bayes is not None:
            layers = bayes.pop("layers", None)
            row |= bayes
            if layers is not None and ctx.main:
                self._append(self.files.sigma_log, {"step": step, **bayes, "layers": layers})
        self.bar.set_postfix(nll=f"{nll:.3f}", kl=f"{kl:.3g}", acc=f"{row['train_acc']:.2f}")
        self.bar.update(1)
        if ctx.main:
            self._append(self.files.metrics_log, row)
            if self.board is not None:
                for key, value in row.items():
                    if key != "step":
                        self.board.add_scalar(f"train/{key}", value, step)

    def evaluation(self, step: int, rows: list[dict[str, Any]]) -> None:
        if self.ctx.main and rows:
            self._append(self.files.eval_log, {"step": step, **rows[0]})

    def close(self) -> None:
        self.bar.close()
        if self.board is not None:
            self.board.close()
            self.board = None

    @staticmethod
    def _append(path: Path, row: dict[str, Any]) -> None:
        with open(path, "a") as fh:
            fh.write(json.dumps(row) + "\n")


def _start_step(ctx: RunContext, files: RunDir, resume: bool, optimizer: AdapterOptimizer) -> int:
    """The step to start from: the latest checkpoint's on resume (its logs cut back to
    it), else 0 with fresh logs."""
    step = 0
    if resume:
        latest = latest_checkpoint(files.checkpoints)
        if latest is not None:
            step = restore_run_checkpoint(ctx, latest, optimizer)
        else:
            ctx.say(f"--resume: no checkpoint in {files.checkpoints}; training from step 0")
        if ctx.main:
            truncate_log(files.metrics_log, step)
            truncate_log(files.sigma_log, step)
    elif ctx.main:
        files.metrics_log.unlink(missing_ok=True)
        files.sigma_log.unlink(missing_ok=True)
    return step


def _check_finite_weights(ctx: RunContext, files: RunDir, step: int) -> None:
    blob = ctx.setup.model
    bad = [n for n, p in blob.named_trainable_parameters() if not full(p).isfinite().all()]
    if bad:
        raise TrainingDivergedError(
            f"adapter weights became NaN/inf by step {step} ({bad[0]}); the last good "
            f"checkpoint is {latest_checkpoint(files.checkpoints) or 'none'}; lower lr "
            f"(now {ctx.cfg.lr}) or set max_grad_norm"
        )


def _finish(ctx: RunContext, run_dir: Path, files: RunDir, step: int) -> None:
    """The metrics as CSV, the sigma plot, and a member's adapter (the run's own adapter
    is saved by the runner, after any post-hoc step)."""
    blob = ctx.setup.model
    member = run_dir != ctx.out
    state = blob.adapter_state_dict() if member else None  # every process (collectives)
    if not ctx.main:
        return
    jsonl_to_csv(files.metrics_log, files.metrics_csv)
    if blob.is_bayesian and files.metrics_log.exists():
        text = files.metrics_log.read_text()
        rows = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        plot_sigma(rows, files.plots / "sigma.png", f"{ctx.cfg.method}: the posterior std")
    if member:
        save_adapter(blob, files.adapter, extra={"steps": step}, state=state)


def _all_finite(ctx: RunContext, loss: torch.Tensor) -> bool:
    """Whether every process's loss is finite: all stop together, none is left waiting in
    the gradient all-reduce."""
    bad = (~torch.isfinite(loss.detach())).float().reshape(1)
    if ctx.acc.num_processes > 1:
        bad = ctx.acc.reduce(bad, reduction="sum")
    return bool(bad.item() == 0)


def seed_process(ctx: RunContext, seed: int) -> None:
    """Each process its own stream for weight noise and dropout, so example i of every
    process does not see the same sample of A. Process 0 keeps `seed`: a one-process run is
    unchanged."""
    if ctx.acc.process_index > 0:
        torch.manual_seed(seed + 1_000_003 * ctx.acc.process_index)
