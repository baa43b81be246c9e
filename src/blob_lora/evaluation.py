"""Evaluation: every example of each evaluation set predicted with N samples, and its files."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from .atomic import atomic_path
from .methods import get_method
from .posterior_stats import SAME_PROBS_TOL, sigma_stats
from .run_files import RunDir, _write_json, dataset_label, ood_split
from .run_setup import eval_subset_seed
from .shards import batch_seed, global_batches, my_batches


class EvalMixin:
    """Runner's evaluation: metrics rows, predictions and reliability plots."""

    def eval_set(self, name: str) -> list:
        """The examples of evaluation set `name`, loaded once per run (validation for the
        run's dataset, its OOD split for the others)."""
        from .data import load_examples

        cfg, setup = self.cfg, self.setup
        if name not in setup.eval_examples:
            split = cfg.eval_split if name == cfg.dataset else ood_split(name)
            setup.eval_examples[name] = load_examples(
                name, split, limit=cfg.eval_limit, seed=eval_subset_seed(cfg)
            )
        return setup.eval_examples[name]

    def evaluate(
        self,
        samples: list[int] | None = None,
        datasets: list[str] | None = None,
        tag: str = "final",
        write: bool = True,
    ) -> list[dict[str, Any]]:
        """Predict every example of each evaluation set with N samples, for each N (a
        generation task: generate, see gen_evaluation)."""
        from .metrics import classification_metrics

        cfg, setup = self.cfg, self.setup
        if getattr(setup.task, "generates", False):
            return self.evaluate_generation(samples, datasets, tag, write)
        samples = self.eval_sample_list(samples)
        names = datasets if datasets is not None else [cfg.dataset, *cfg.eval_datasets]
        rows = []
        setup.model.eval()
        bayes = sigma_stats(setup.model) if tag == "final" or write else None
        if tag == "final":
            self._same_as_mean = []
        for name in names:
            examples = self.eval_set(name)
            foreign = name != cfg.dataset and _other_label_space(examples, setup.task)
            if foreign:  # labels of another task: predictions only (for OOD detection)
                examples = [dataclasses.replace(e, label=0) for e in examples]
            at_mean = None
            for n in samples:
                probs, labels, mi = self.predict(examples, n, desc=f"eval {dataset_label(name)}")
                if not self.acc.is_main_process:
                    continue
                # how much the samples disagree: whether the posterior reaches the predictions
                spread = {"mean_mi": float(mi.mean())} if n > 0 else {}
                if foreign:
                    labels = torch.full_like(labels, -1)
                    row = self._foreign_row(name, n, probs, len(labels), bayes) | spread
                    rows.append(row)
                    if write:
                        self._write_eval(name, n, probs, labels, mi, tag, plot=False)
                    continue
                if n == 0:
                    at_mean = probs
                elif at_mean is not None and name == cfg.dataset and tag == "final":
                    if float((probs - at_mean).abs().max()) <= SAME_PROBS_TOL:
                        self._same_as_mean.append(n)
                metrics = classification_metrics(probs.numpy(), labels.numpy())
                row = {
                    **self.row_head(name, n, len(labels)),
                    **{k: float(v) for k, v in metrics.items()},
                    "majority_acc": 100.0 * float(torch.bincount(labels).max()) / len(labels),
                    **(bayes or {}),
                    **spread,
                    **setup.method.row_extras(setup.model, n),
                }
                rows.append(row)
                if write:
                    self._write_eval(name, n, probs, labels, mi, tag)
        if write and self.acc.is_main_process:
            _write_json(RunDir(self.out).results(tag), rows)
        return rows

    def eval_sample_list(self, samples: list[int] | None = None) -> list[int]:
        """The N an evaluation predicts with: those asked for, else the run's, else the
        method's own default."""
        if samples is not None:
            return list(samples)
        if self.cfg.eval_samples is not None:
            return list(self.cfg.eval_samples)
        return list(get_method(self.cfg.method, self.cfg.method_options).default_eval_samples)

    def row_head(self, name: str, n: int, count: int) -> dict[str, Any]:
        """The columns every results row starts with: what was run and evaluated on what."""
        cfg = self.cfg
        return {
            "model": cfg.model,
            "dataset": dataset_label(name),
            "method": cfg.method,
            "n_samples": n,
            "seed": cfg.seed,
            "steps": getattr(self, "trained_steps", cfg.max_steps),
            "n_examples": count,
        }

    def _foreign_row(
        self, name: str, n: int, probs: torch.Tensor, count: int, bayes: dict | None
    ) -> dict[str, Any]:
        """A results row for a set whose labels are another task's: no ACC/ECE/NLL (they
        would compare with labels the model never had), the predictive's confidence."""
        p = probs.double()
        entropy = -(p * p.clamp_min(1e-12).log()).sum(-1)
        return {
            **self.row_head(name, n, count),
            "labels": "another task's (predictions only, for OOD detection)",
            "mean_max_prob": float(p.max(-1).values.mean()),
            "mean_entropy": float(entropy.mean()),
            **(bayes or {}),
        }

    @torch.no_grad()
    def predict(
        self, examples: list, n_samples: int, desc: str = "eval"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(probs, labels, mutual information) for every example, sharded over processes
        and gathered back in order, none dropped. Batch k draws its noise (weight samples,
        dropout masks) from its own seed: the numbers depend on the seed and the examples,
        not on the number of processes, and training's random stream is left as it was."""
        acc, setup = self.acc, self.setup
        from .data import text_size

        batches = global_batches([text_size(e) for e in examples], self.cfg.eval_batch_size)
        lockstep = self.cfg.sharding == "fsdp"
        share = my_batches(batches, acc.process_index, acc.num_processes, lockstep)
        out: list[tuple[int, list[float], int, float]] = []
        devices = [acc.device] if acc.device.type == "cuda" else []
        bar = tqdm(
            total=sum(len(idx) for k, idx in share if k is not None),
            desc=f"{desc} N={n_samples}",
            unit="ex",
            disable=not acc.is_main_process,
            dynamic_ncols=True,
            leave=False,
        )
        for k, idx in share:
            batch = self._to_device(setup.task.collate([examples[j] for j in idx]))
            with torch.random.fork_rng(devices=devices), self.autocast():
                torch.manual_seed(batch_seed(self.cfg.seed, k or 0))
                probs, samples = setup.method.predict(
                    setup.model,
                    lambda b=batch: setup.task.class_logits(setup.model.model, b).float(),
                    n_samples,
                )
            if k is None:  # a lock-step pass of a sharded model: nothing to keep
                continue
            probs = probs.float()
            bar.update(len(idx))
            mi = _mutual_information(samples.float().cpu())
            for j, p, y, m in zip(
                idx, probs.cpu().tolist(), batch["labels"].cpu().tolist(), mi.tolist(), strict=True
            ):
                out.append((j, p, y, m))
        bar.close()
        if acc.num_processes > 1:
            from accelerate.utils import gather_object

            out = gather_object(out)
        out.sort(key=lambda t: t[0])
        width = max(len(t[1]) for t in out)
        probs = torch.tensor([t[1] + [0.0] * (width - len(t[1])) for t in out])
        labels = torch.tensor([t[2] for t in out])
        mi = torch.tensor([t[3] for t in out])
        return probs, labels, mi

    def _write_eval(
        self,
        name: str,
        n: int,
        probs: torch.Tensor,
        labels: torch.Tensor,
        mi: torch.Tensor,
        tag: str,
        plot: bool = True,
    ) -> None:
        """Reliability diagram + the raw predictions (for OOD-detection AUROC later)."""
        from .report.reliability import plot_reliability

        safe = dataset_label(name)
        pred_dir = RunDir(self.out).predictions
        pred_dir.mkdir(parents=True, exist_ok=True)
        final = pred_dir / f"{tag}-{safe}-N{n}.safetensors"
        with atomic_path(final) as tmp:
            save_file(
                {"probs": probs.contiguous(), "labels": labels, "mutual_information": mi}, str(tmp)
            )
        if not plot:  # no labels to be reliable against
            return
        plot_reliability(
            probs.numpy(),
            labels.numpy(),
            RunDir(self.out).plots / f"{tag}-{safe}-N{n}.png",
            title=f"{self.cfg.method} on {name}, N={n}",
        )


def _other_label_space(examples: list, task: Any) -> bool:
    """Whether a classification set's labels are not the model's classes (another number
    of them): its ACC/ECE/NLL would mean nothing, its predictions still serve OOD detection."""
    classes = getattr(task, "num_classes", None)
    labels = [getattr(e, "label", None) for e in examples]
    if classes is None or any(label is None for label in labels) or not labels:
        return False
    return max(labels) + 1 != classes


def _mutual_information(samples: torch.Tensor) -> torch.Tensor:
    """(S, B, C) sampled probabilities -> (B,) H(mean) - mean H (0 for one sample)."""

    def entropy(p: torch.Tensor) -> torch.Tensor:
        return -(p * torch.log(p.clamp_min(1e-12))).sum(-1)

    return (entropy(samples.mean(0)) - entropy(samples).mean(0)).clamp_min(0.0)
