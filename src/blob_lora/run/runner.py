"""One run, start to end: `prepare` the folder and set-up, `fit` each adapter the method
trains, its post-hoc step, save, and evaluate with the task's evaluator. `Runner` holds
the run's `RunContext` and hands it to each part; every part takes what it uses as
arguments (see context, prepare, fit, checkpoint, evaluate)."""

from __future__ import annotations

from typing import Any

import torch
from accelerate import Accelerator

from ..adapter_io import CONFIG_FILE, load_adapter_weights, read_adapter_config, save_adapter
from ..config import AdapterConfig
from ..errors import BlobLoraError, ConfigError
from ..kl_plan import init_sigma_mean
from ..methods import get_method
from ..methods.base import PostTrainContext
from ..posterior_stats import health_line, health_warnings, sigma_stats
from .checkpoint import latest_checkpoint
from .config import RunConfig
from .context import new_context
from .evaluate import Evaluator, resolve_samples
from .files import RunDir, dataset_label, is_write_failure, write_failure_reason
from .fit import fit
from .prepare import finished, prepare
from .setup import Setup, build_setup


class Runner:
    """Train, checkpoint, resume and evaluate one run (`blob train`, `blob eval`)."""

    def __init__(self, cfg: RunConfig, accelerator: Accelerator | None = None) -> None:
        self.ctx = new_context(cfg, accelerator)

    @property
    def cfg(self) -> RunConfig:
        return self.ctx.cfg

    @property
    def acc(self) -> Accelerator:
        return self.ctx.acc

    @property
    def setup(self) -> Setup | None:
        return self.ctx.setup

    @setup.setter
    def setup(self, setup: Setup) -> None:
        self.ctx.setup = setup

    def evaluator(self) -> Any:
        """The task's evaluator: generation, or classification and multiple choice."""
        if getattr(self.ctx.setup.task, "generates", False):
            from ..generation.evaluate import GenerationEvaluator

            return GenerationEvaluator(self.ctx)
        return Evaluator(self.ctx)

    def evaluate(
        self,
        samples: list[int] | None = None,
        datasets: list[str] | None = None,
        tag: str = "final",
        write: bool = True,
    ) -> list[dict[str, Any]]:
        """Each set and each N once (in the order given): a repeat would write its rows
        twice into one results file."""
        samples = list(dict.fromkeys(samples)) if samples is not None else None
        datasets = list(dict.fromkeys(datasets)) if datasets is not None else None
        return self.evaluator().evaluate(samples, datasets, tag, write)

    # -- training ---------------------------------------------------------------------------
    def train(self, resume: bool = False) -> dict[str, Any]:
        """Train (every ensemble member), run the method's post-hoc step, evaluate."""
        ctx = self.ctx
        if resume and (done := finished(ctx)) is not None:
            return done
        try:
            return self._train(resume)
        except Exception as err:
            if not is_write_failure(err):
                raise
            last = latest_checkpoint(ctx.files.checkpoints)
            fix = (
                f"the last good checkpoint is {last}; free space or fix permissions, then run "
                "again with --resume"
                if last
                else "nothing was saved yet; choose a writable output_dir (or free space / fix "
                "permissions) and run again"
            )
            raise BlobLoraError(
                f"cannot write in {ctx.out}: {write_failure_reason(err)}; {fix}"
            ) from err
        finally:
            ctx.release()

    def _train(self, resume: bool) -> dict[str, Any]:
        ctx = self.ctx
        resume = prepare(ctx, resume)
        cfg, setup = ctx.cfg, ctx.setup
        if not setup.train_examples:
            raise ConfigError(f"dataset {cfg.dataset!r} split {cfg.train_split!r} is empty")
        evaluator = self.evaluator()

        def evaluate_mean(step: int) -> list[dict[str, Any]]:
            return evaluator.evaluate(samples=[0], tag=f"step{step}", write=False)

        def train_part(part: str, seed: int, data_seed: int) -> None:
            files = ctx.files.part(part)
            if part and files.adapter.is_dir():
                load_adapter_weights(setup.model, files.adapter)  # a finished member
            elif cfg.max_steps == 0 and cfg.init_from:
                pass  # post-hoc only: the adapter comes trained
            else:
                fit(ctx, files.root, resume, seed, data_seed, evaluate_mean)

        setup.method.train_adapters(setup.model, train_part, cfg.seed)
        with ctx.autocast():  # Laplace turns it off for its fit; TFB's search runs in it
            setup.model = setup.method.post_train(setup.model, self.post_train_context())
        if "" in setup.method.parts():  # the run's own adapter
            state = setup.model.adapter_state_dict()  # every process: gathers shards
            if ctx.main:
                save_adapter(
                    setup.model,
                    ctx.files.adapter,
                    extra={"run": cfg.to_dict(), "steps": ctx.trained_steps},
                    state=state,
                )
        ctx.acc.wait_for_everyone()
        results = evaluator.evaluate()
        health = self.posterior_health(results)
        warnings = [*health.pop("warnings", []), *not_learned_warnings(results, cfg)]
        out = {"steps": ctx.trained_steps, "results": results, **health}
        return out | ({"warnings": warnings} if warnings else {})

    def posterior_health(self, results: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The sigma line and the warnings a Bayesian run ends with (empty otherwise); with
        the final results, the line also says how much the largest N's samples disagree."""
        ctx = self.ctx
        stats = sigma_stats(ctx.setup.model)
        if stats is None:
            return {}
        trained = ctx.cfg.max_steps > 0 and ctx.setup.method.posterior_trained
        sigma0 = init_sigma_mean(ctx.setup.model.adapter_config.init_std_eps) if trained else None
        largest = _largest_n_mi(results or [], ctx.cfg.dataset)
        return {
            "posterior": health_line(stats, sigma0, largest),
            "warnings": health_warnings(stats, sigma0, ctx.same_as_mean),
        }

    def load_finished(self, with_eval: bool = True, samples: list[int] | None = None) -> None:
        """Rebuild a finished run's predicting model from its directory (`blob eval`): its
        adapter (or every ensemble member's), and a post-hoc fit that is not saved with the
        adapter (Laplace, a temperature) redone on the training data, for the N asked."""
        ctx, cfg = self.ctx, self.ctx.cfg
        method = get_method(cfg.method, cfg.method_options)
        dirs = {part: RunDir(ctx.out).part(part).adapter for part in method.parts()}
        for d in dirs.values():
            if not (d / CONFIG_FILE).is_file():
                raise ConfigError(f"{ctx.out} is not a finished {cfg.method} run: {d} is missing")
        meta = read_adapter_config(next(iter(dirs.values())))
        saved = AdapterConfig.from_saved(meta["config"])
        refit = not method.posterior_saved
        ctx.setup = build_setup(cfg, with_train=refit, adapter_config=saved, with_eval=with_eval)
        model = ctx.setup.model
        model.to(ctx.acc.device)
        method.load_adapters(model, lambda part: load_adapter_weights(model, dirs[part]))
        ctx.trained_steps = int(meta.get("steps", cfg.max_steps))
        if refit:
            with ctx.autocast():
                ctx.setup.model = method.post_train(model, self.post_train_context(samples))

    def post_train_context(self, samples: list[int] | None = None) -> PostTrainContext:
        """What a post-hoc method may use: the training set, a fixed anchor subset of it,
        the held-out calibration rows, and the model's class logits for a batch."""
        ctx, cfg, setup = self.ctx, self.ctx.cfg, self.ctx.setup
        examples = setup.train_examples
        gen = torch.Generator().manual_seed(cfg.seed)
        anchor = torch.randperm(len(examples), generator=gen)[: cfg.anchor_size].tolist()

        def class_logits(batch: dict[str, Any]) -> torch.Tensor:
            # no autocast of its own: the caller's region decides (Laplace's fit is fp32)
            return setup.task.class_logits(setup.model.model, batch).float()

        def batches(rows: list):
            for i in range(0, len(rows), cfg.eval_batch_size):
                yield ctx.to_device(setup.task.collate(rows[i : i + cfg.eval_batch_size]))

        generates = getattr(setup.task, "generates", False)
        return PostTrainContext(
            train_batches=lambda: batches(examples),
            anchor_batches=lambda: batches([examples[j] for j in anchor]),
            class_logits=class_logits,
            n_train=len(examples),
            seed=cfg.seed,
            calib_batches=lambda: batches(setup.calib_examples),
            n_calib=len(setup.calib_examples),
            eval_samples=tuple(resolve_samples(cfg, samples, generates)),
        )


def not_learned_warnings(rows: list[dict[str, Any]], cfg: RunConfig) -> list[str]:
    """A run whose accuracy on its own evaluation set ends at or below the majority class
    has not learned the task: one warning naming the likely causes."""
    label = dataset_label(cfg.dataset)
    low = [
        r
        for r in rows
        if r.get("dataset") == label
        and r.get("acc") is not None
        and r.get("majority_acc") is not None
        and r["acc"] <= r["majority_acc"]
    ]
    if not low:
        return []
    at = ", ".join(f"N={r['n_samples']}: {r['acc']:.1f}%" for r in low)
    return [
        f"accuracy at or below the majority class ({low[0]['majority_acc']:.1f}%) on "
        f"{label} ({at}): the model has not learned the task; likely causes: too few steps "
        f"(max_steps={cfg.max_steps}) or a learning rate off by an order of magnitude "
        f"(lr={cfg.lr:g}; try 3x and 1/3x)"
    ]


def _largest_n_mi(rows: list[dict[str, Any]], dataset: Any) -> tuple[int, float] | None:
    """(N, mean mutual information) of the largest sampled N on the training task's set."""
    label = dataset_label(dataset)
    sampled = [r for r in rows if r.get("dataset") == label and "mean_mi" in r]
    if not sampled:
        return None
    top = max(sampled, key=lambda r: r["n_samples"])
    return top["n_samples"], top["mean_mi"]
