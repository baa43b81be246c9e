"""The optimization loop: batches, the step, divergence checks, logs and periodic saves."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .adapter_io import save_adapter
from .adapter_model import BlobModel
from .batches import example_stream, grouped_batch
from .checkpoint import latest_checkpoint
from .errors import BlobLoraError
from .optim import AdapterOptimizer, OptimConfig, decay_is_lost
from .posterior_stats import plot_sigma, sigma_stats
from .run_files import RunDir, _jsonl_to_csv, _tensorboard, _truncate_log, dataset_label
from .sharding import average_replicated_grads, full, is_sharded, shard_model
from .tasks.base import train_loss, train_outputs


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


class FitMixin:
    """Runner's optimization loop of one adapter (checkpoints: CheckpointMixin)."""

    def _fit(self, run_dir: Path, resume: bool, seed: int, data_seed: int | None = None) -> int:
        """The optimization loop of one adapter; checkpoints and logs under `run_dir`.
        `seed` drives the noise and dropout streams, `data_seed` the order of examples."""
        data_seed = seed if data_seed is None else data_seed
        cfg, setup, acc = self.cfg, self.setup, self.acc
        blob = setup.model
        n_train = len(setup.train_examples)
        plan = self.kl_plan or self.make_kl_plan()
        schedule = plan.schedule
        if cfg.sharding == "fsdp" and acc.num_processes == 1 and acc.is_main_process:
            print(
                "sharding=fsdp with one process: nothing to shard over, training unsharded "
                "(start it with `accelerate launch --num_processes N -m blob_lora.cli train`)",
                file=sys.stderr,
                flush=True,
            )
        elif cfg.sharding == "fsdp" and not any(is_sharded(p) for p in blob.parameters()):
            blocks = shard_model(blob.model)  # before the optimizer: it holds the shards
            if acc.is_main_process:
                print(
                    f"sharding=fsdp: {blocks} blocks and the body holding them sharded over "
                    f"{acc.num_processes} process(es); the output head whole on each",
                    flush=True,
                )
        weight_decay = next(
            (w for w in (setup.method.weight_decay, cfg.weight_decay) if w is not None), 0.0
        )
        if acc.is_main_process and decay_is_lost(cfg.lr, weight_decay):
            print(
                f"warning: weight_decay={weight_decay:g} at lr={cfg.lr:g} does nothing: AdamW "
                f"multiplies the fp32 adapter weights by 1 - lr*weight_decay, which rounds to "
                "exactly 1, so this run trains bit for bit as with weight_decay=0 (the authors' "
                "MAP has the same property); for a prior that acts, use method=mle with "
                f"weight_decay >= {3e-8 / cfg.lr:.1g}",
                file=sys.stderr,
                flush=True,
            )
        optimizer = AdapterOptimizer(
            blob,
            OptimConfig(
                scheme=cfg.optim_scheme,
                lr=cfg.lr,
                kl_lr=plan.kl_lr,
                weight_decay=weight_decay,
                warmup_steps=int(cfg.warmup_ratio * cfg.max_steps),
                total_steps=cfg.max_steps,
                max_grad_norm=cfg.max_grad_norm,
                adam_eps=cfg.adam_eps,
                scheduler_steps_per_step=acc.num_processes if cfg.lr_schedule_per_process else 1,
            ),
        )
        scorer = Scorer(blob, setup.task)
        if cfg.sharding != "fsdp":  # FSDP reduces the gradients itself; DDP wraps the rest
            scorer = acc.prepare(scorer)
        step = 0
        files = RunDir(run_dir)
        ckpt_dir, log_path, sigma_path = files.checkpoints, files.metrics_log, files.sigma_log
        sigma_every = max(1, cfg.max_steps // 50)
        if acc.is_main_process:
            run_dir.mkdir(parents=True, exist_ok=True)
        self._seed_process(seed)
        if resume:
            latest = latest_checkpoint(ckpt_dir)
            if latest is not None:
                step = self._restore(latest, optimizer)
            elif acc.is_main_process:
                print(f"--resume: no checkpoint in {ckpt_dir}; training from step 0", flush=True)
            if acc.is_main_process:
                _truncate_log(log_path, step)
                _truncate_log(sigma_path, step)
        elif acc.is_main_process:
            log_path.unlink(missing_ok=True)
            sigma_path.unlink(missing_ok=True)
        blob.train()
        bar = tqdm(
            total=cfg.max_steps,
            initial=step,
            disable=not acc.is_main_process,
            desc=f"{cfg.method} {dataset_label(cfg.dataset)}",
            dynamic_ncols=True,
        )
        recent: list[float] = []
        board = _tensorboard(run_dir) if acc.is_main_process else None
        start = time.time()
        while step < cfg.max_steps:
            nll_sum, correct, seen = 0.0, 0, 0
            for micro in range(cfg.grad_accum):
                batch = self._train_batch(step, micro, n_train, data_seed)
                with acc.accumulate(scorer):
                    with self.autocast():
                        outputs = scorer(batch)
                    nll, n_correct, n_seen = train_loss(setup.task, outputs, batch)
                    if not self._all_finite(nll):
                        bar.close()
                        last = latest_checkpoint(ckpt_dir)
                        raise TrainingDivergedError(
                            f"loss is not finite at step {step + 1} ({nll.item()}); the last "
                            "good checkpoint is "
                            f"{last or 'none'}; lower lr (now {cfg.lr}) or set max_grad_norm"
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
            weight = schedule.weight(step)
            if cfg.sharding == "fsdp" and acc.num_processes > 1:
                average_replicated_grads(blob)  # the head's: FSDP reduces only its shards
            kl = optimizer.step(weight)
            step += 1
            recent = (recent + [correct / max(seen, 1)])[-20:]
            row = {
                "step": step,
                "nll": nll_sum,
                "kl": float(kl),
                "kl_weight": weight,
                "train_acc": sum(recent) / len(recent),
                "lr": optimizer.schedulers[0].get_last_lr()[0],
                "elapsed_s": time.time() - start,
            }
            bayes = sigma_stats(blob, per_layer=step % sigma_every == 0 or step == cfg.max_steps)
            if bayes is not None:
                layers = bayes.pop("layers", None)
                row |= bayes
                if layers is not None and acc.is_main_process:
                    with open(sigma_path, "a") as fh:
                        fh.write(json.dumps({"step": step, **bayes, "layers": layers}) + "\n")
            bar.set_postfix(
                nll=f"{nll_sum:.3f}", kl=f"{float(kl):.3g}", acc=f"{row['train_acc']:.2f}"
            )
            bar.update(1)
            if acc.is_main_process:
                with open(log_path, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                if board is not None:
                    for key, value in row.items():
                        if key != "step":
                            board.add_scalar(f"train/{key}", value, step)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
                rows = self.evaluate(samples=[0], tag=f"step{step}", write=False)
                if acc.is_main_process and rows:
                    with open(files.eval_log, "a") as fh:
                        fh.write(json.dumps({"step": step, **rows[0]}) + "\n")
                blob.train()
            if cfg.save_every and step % cfg.save_every == 0 and step < cfg.max_steps:
                bad = [
                    n for n, p in blob.named_trainable_parameters() if not full(p).isfinite().all()
                ]
                if bad:  # never write a checkpoint that a resume could not recover from
                    bar.close()
                    raise TrainingDivergedError(
                        f"adapter weights became NaN/inf by step {step} ({bad[0]}); the last "
                        f"good checkpoint is {latest_checkpoint(ckpt_dir) or 'none'}; lower lr "
                        f"(now {cfg.lr}) or set max_grad_norm"
                    )
                try:
                    self._save_checkpoint(ckpt_dir, step, optimizer)
                except BaseException:
                    bar.close()  # the error's line must not be glued onto the bar's
                    raise
        bar.close()
        if board is not None:
            board.close()
        state = blob.adapter_state_dict() if run_dir != self.out else None  # all processes
        if acc.is_main_process:
            _jsonl_to_csv(log_path, files.metrics_csv)
            if blob.is_bayesian and log_path.exists():
                rows = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()]
                plot_sigma(rows, files.plots / "sigma.png", f"{cfg.method}: the posterior std")
            if run_dir != self.out:
                save_adapter(blob, files.adapter, extra={"steps": step}, state=state)
        return step

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        dev = self.acc.device
        return {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batch.items()}

    def _train_batch(self, step: int, micro: int, n_train: int, seed: int) -> dict[str, Any]:
        cfg, acc = self.cfg, self.acc
        per_micro = cfg.batch_size * acc.num_processes
        index = step * cfg.grad_accum + micro
        if cfg.group_by_length:
            if self._train_sizes is None:
                from .data import text_size

                self._train_sizes = [text_size(e) for e in self.setup.train_examples]
            indices = grouped_batch(self._train_sizes, seed, index, per_micro)
        else:
            indices = example_stream(n_train, seed, index * per_micro, per_micro)
        mine = indices[
            acc.process_index * cfg.batch_size : (acc.process_index + 1) * cfg.batch_size
        ]
        return self._to_device(
            self.setup.task.collate([self.setup.train_examples[i] for i in mine])
        )

    def _all_finite(self, loss: torch.Tensor) -> bool:
        """Whether every process's loss is finite: all stop together, none is left
        waiting in the gradient all-reduce."""
        bad = (~torch.isfinite(loss.detach())).float().reshape(1)
        if self.acc.num_processes > 1:
            bad = self.acc.reduce(bad, reduction="sum")
        return bool(bad.item() == 0)

    def _seed_process(self, seed: int) -> None:
        """Each process its own stream for weight noise and dropout, so example i of every
        process does not see the same sample of A. Process 0 keeps `seed`: a one-process
        run is unchanged."""
        if self.acc.process_index > 0:
            torch.manual_seed(seed + 1_000_003 * self.acc.process_index)
