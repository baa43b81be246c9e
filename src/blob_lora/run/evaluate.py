"""Evaluation of a classification or multiple-choice run: every example of each
evaluation set predicted with N samples, its metrics rows, predictions and reliability
plots. A generation run has its own evaluator (`generation.evaluate`); the two share the
evaluation sets, the N, and the head of every results row (below)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..data.batching import batch_seed, global_batches, my_batches
from ..methods import get_method
from ..posterior_stats import SAME_PROBS_TOL, sigma_stats
from .config import RunConfig
from .context import RunContext
from .files import dataset_label, write_json
from .reuse import fingerprint, source_predictions
from .setup import eval_subset_seed


def eval_set(ctx: RunContext, name: str) -> list:
    """The examples of evaluation set `name`, loaded once per run: the run's evaluation
    split for its own dataset, the set's own OOD split (its spec says) for the others."""
    from ..data import load_examples

    cfg, setup = ctx.cfg, ctx.setup
    if name not in setup.eval_examples:
        setup.eval_examples[name] = load_examples(
            name, _eval_split(cfg, name), limit=cfg.eval_limit, seed=eval_subset_seed(cfg)
        )
    return setup.eval_examples[name]


def _eval_split(cfg: RunConfig, name: str) -> str:
    from ..data.specs import parse_spec

    return cfg.eval_split if name == cfg.dataset else parse_spec(name)[0].ood_split


def set_labels(ctx: RunContext, name: str, examples: list) -> list:
    """The labels of evaluation set `name` as a whole: an eval_limit subset may hold one
    class only (`--limit 1`), and the set's label space is that of the split it is drawn
    from."""
    from ..data import load_examples

    limit = ctx.cfg.eval_limit
    if limit is None or len(examples) < limit:  # the whole split already
        return [getattr(e, "label", None) for e in examples]
    whole = load_examples(name, _eval_split(ctx.cfg, name))
    return [getattr(e, "label", None) for e in whole]


def resolve_samples(cfg: RunConfig, samples: list[int] | None, generates: bool) -> list[int]:
    """The N an evaluation draws, for both evaluators: those asked for, else the run's,
    else the default (a generation run's: 0 and gen_samples, N=1 refused; otherwise the
    method's own)."""
    if generates:
        from ..generation.checks import generation_samples

        return generation_samples(cfg, samples)
    if samples is not None:
        return list(samples)
    if cfg.eval_samples is not None:
        return list(cfg.eval_samples)
    return list(get_method(cfg.method, cfg.method_options).default_eval_samples)


def row_head(ctx: RunContext, name: str, n: int, count: int) -> dict[str, Any]:
    """The columns every results row starts with: what was run and evaluated on what."""
    cfg = ctx.cfg
    return {
        "model": cfg.model,
        "dataset": dataset_label(name),
        "method": cfg.method,
        "n_samples": n,
        "seed": cfg.seed,
        "steps": ctx.trained_steps,
        "n_examples": count,
    }


class Evaluator:
    """Classification and multiple choice: class probabilities, metrics, predictions."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._foreign: dict[str, str | None] = {}  # set -> why its labels are another task's

    def foreign(self, name: str, examples: list) -> str | None:
        """Why set `name`'s labels are not the model's classes (None: they are), decided
        once per set from the whole set (training evaluates at every eval step)."""
        ctx, classes = self.ctx, getattr(self.ctx.setup.task, "num_classes", None)
        if name == ctx.cfg.dataset or classes is None:
            return None
        if name not in self._foreign:
            self._foreign[name] = other_label_space(set_labels(ctx, name, examples), classes)
        return self._foreign[name]

    def evaluate(
        self,
        samples: list[int] | None = None,
        datasets: list[str] | None = None,
        tag: str = "final",
        write: bool = True,
    ) -> list[dict[str, Any]]:
        """Predict every example of each evaluation set with N samples, for each N."""
        ctx, cfg, setup = self.ctx, self.ctx.cfg, self.ctx.setup
        samples = resolve_samples(cfg, samples, generates=False)
        names = datasets if datasets is not None else [cfg.dataset, *cfg.eval_datasets]
        rows: list[dict[str, Any]] = []
        setup.model.eval()
        bayes = sigma_stats(setup.model) if tag == "final" or write else None
        if tag == "final":
            ctx.same_as_mean = []
        for name in names:
            rows += self._evaluate_set(name, samples, tag, write, bayes)
        if write and ctx.main:
            write_json(ctx.files.results(tag), rows)
        return rows

    def _evaluate_set(
        self, name: str, samples: list[int], tag: str, write: bool, bayes: dict | None
    ) -> list[dict[str, Any]]:
        from ..metrics import classification_metrics

        ctx, cfg, setup = self.ctx, self.ctx.cfg, self.ctx.setup
        examples = eval_set(ctx, name)
        foreign = self.foreign(name, examples)
        if foreign:  # labels of another task: predictions only (for OOD detection)
            examples = [dataclasses.replace(e, label=0) for e in examples]
        rows, at_mean = [], None
        for n in samples:
            reused = self._reused(name, n, tag, examples)
            if reused is not None:
                probs, labels, mi = reused
            else:
                probs, labels, mi = self.predict(examples, n, desc=f"eval {dataset_label(name)}")
            if not ctx.main:
                continue
            # how much the samples disagree: whether the posterior reaches the predictions
            spread = {"mean_mi": float(mi.mean())} if n > 0 else {}
            if foreign:
                labels = torch.full_like(labels, -1)
                row = self._foreign_row(name, n, probs, len(labels), bayes, foreign)
                rows.append(row | spread)
                if write:
                    self._write_eval(name, n, (probs, labels, mi), tag, examples, plot=False)
                continue
            if n == 0:
                at_mean = probs
            elif at_mean is not None and name == cfg.dataset and tag == "final":
                if float((probs - at_mean).abs().max()) <= SAME_PROBS_TOL:
                    ctx.same_as_mean.append(n)
            metrics = classification_metrics(probs.numpy(), labels.numpy())
            rows.append(
                {
                    **row_head(ctx, name, n, len(labels)),
                    **{k: float(v) for k, v in metrics.items()},
                    "majority_acc": 100.0 * float(torch.bincount(labels).max()) / len(labels),
                    **(bayes or {}),
                    **spread,
                    **setup.method.row_extras(setup.model, n),
                }
            )
            if write:
                self._write_eval(name, n, (probs, labels, mi), tag, examples)
        return rows

    def _reused(
        self, name: str, n: int, tag: str, examples: list
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The run's final predictions of a set mapped from its source run's (`run.reuse`),
        or None. The main process decides for all: the others then predict or skip with it,
        so every process takes part in the same passes."""
        ctx = self.ctx
        if tag != "final":
            return None
        reused = source_predictions(ctx, name, n, examples) if ctx.main else None
        decided = [reused is not None]
        if ctx.acc.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            broadcast_object_list(decided)
        if not decided[0]:
            return None
        if ctx.main:
            ctx.say(f"eval {dataset_label(name)} N={n}: the source run's predictions, mapped")
            return reused
        return torch.zeros(0), torch.zeros(0), torch.zeros(0)  # skipped off the main process

    def _foreign_row(
        self, name: str, n: int, probs: torch.Tensor, count: int, bayes: dict | None, why: str
    ) -> dict[str, Any]:
        """A results row for a set whose labels are another task's: no ACC/ECE/NLL (they
        would compare with labels the model never had), the predictive's confidence."""
        p = probs.double()
        entropy = -(p * p.clamp_min(1e-12).log()).sum(-1)
        return {
            **row_head(self.ctx, name, n, count),
            "labels": f"another task's ({why}): predictions only, for OOD detection",
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
        acc, setup = self.ctx.acc, self.ctx.setup
        from ..data import text_size

        batches = global_batches([text_size(e) for e in examples], self.ctx.cfg.eval_batch_size)
        lockstep = self.ctx.cfg.sharding == "fsdp"
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
            batch = self.ctx.to_device(setup.task.collate([examples[j] for j in idx]))
            with torch.random.fork_rng(devices=devices), self.ctx.autocast():
                torch.manual_seed(batch_seed(self.ctx.cfg.seed, k or 0))
                probs, samples = setup.method.predict(
                    setup.model,
                    lambda b=batch: setup.task.class_logits(setup.model.model, b).float(),
                    n_samples,
                )
            if k is None:  # a lock-step pass of a sharded model: nothing to keep
                continue
            probs = probs.float()
            bar.update(len(idx))
            mi = _samples_mi(samples.float().cpu())
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
        predicted: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        tag: str,
        examples: list,
        plot: bool = True,
    ) -> None:
        """Reliability diagram + the raw predictions (for OOD-detection AUROC later), with
        a fingerprint of what made them (so a post-hoc run may reuse them, `run.reuse`)."""
        from ..report.reliability import plot_reliability

        probs, labels, mi = predicted
        safe = dataset_label(name)
        pred_dir = self.ctx.files.predictions
        pred_dir.mkdir(parents=True, exist_ok=True)
        final = pred_dir / f"{tag}-{safe}-N{n}.safetensors"
        tensors = {"probs": probs.contiguous(), "labels": labels, "mutual_information": mi}
        made_by = fingerprint(self.ctx, examples, self.ctx.files.adapter)
        with atomic_path(final) as tmp:
            save_file(tensors, str(tmp), metadata=made_by)
        if not plot:  # no labels to be reliable against
            return
        plot_reliability(
            probs.numpy(),
            labels.numpy(),
            self.ctx.files.plots / f"{tag}-{safe}-N{n}.png",
            title=f"{self.ctx.cfg.method} on {name}, N={n}",
        )


def other_label_space(labels: list, classes: int) -> str | None:
    """Why a classification set's labels (those of the whole set) are not the model's
    `classes` classes, or None when they are: a label the model has no class for, or
    another number of classes (2 and more of them present). Its ACC/ECE/NLL would mean
    nothing; its predictions still serve OOD detection. A set of one class only (all 0)
    within the model's classes is this task's: it is evaluated, with metrics."""
    if not labels or any(label is None for label in labels):
        return None
    present = sorted(set(labels))
    if present[-1] >= classes:
        return f"label {present[-1]}, the model has classes 0..{classes - 1}"
    if len(present) > 1 and present[-1] + 1 != classes:
        return f"{present[-1] + 1} classes, the model has {classes}"
    return None


def _samples_mi(samples: torch.Tensor) -> torch.Tensor:
    """(S, B, C) sampled probabilities -> (B,) H(mean) - mean H (0 for one sample)."""

    def entropy(p: torch.Tensor) -> torch.Tensor:
        return -(p * torch.log(p.clamp_min(1e-12))).sum(-1)

    return (entropy(samples.mean(0)) - entropy(samples).mean(0)).clamp_min(0.0)
