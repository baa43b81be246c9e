"""Before the first step: the run folder checked (a finished run, a run to resume, a start
that saved nothing), the set-up built, a starting adapter loaded, the KL plan made, and the
run's config written. Everything that can refuse the run refuses it here, before anything
is written."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..adapter_io import load_init_weights
from ..errors import ConfigError
from ..generation.checks import model_positions
from ..kl_plan import AUTHORS, KLPlan, KLSchedule, init_sigma_mean, plan_authors, plan_budget
from ..methods import get_method
from .checks import check_lengths_fit_model, check_max_length, resolve_task_kind
from .config import RunConfig
from .context import RunContext
from .files import as_saved, lock_run_dir, plan_dict, write_json
from .setup import build_setup


def prepare(ctx: RunContext, resume: bool) -> bool:
    """Check the folder, build the model, write the run's config; returns whether the run
    resumes (False after clearing a start that saved nothing)."""
    resume = _check_folder(ctx, resume)
    ctx.acc.wait_for_everyone()  # every process checked before process 0 writes below
    cfg = ctx.cfg
    ctx.setup = build_setup(cfg)
    hf_config = ctx.setup.model.model.config
    check_lengths_fit_model(cfg, hf_config, resolve_task_kind(cfg))
    ctx.setup.model.to(ctx.acc.device)  # also for paths that never train (post-hoc)
    if cfg.init_from:  # before anything is written: a bad path leaves no output
        if ctx.setup.method.members > 1:
            raise ConfigError(
                f"init_from does not apply to {cfg.method!r}: its members "
                "are trained independently from scratch"
            )
        meta = load_init_weights(ctx.setup.model, cfg.init_from)
        ctx.trained_steps = int(meta.get("steps", 0)) + cfg.max_steps
    if cfg.max_steps > 0:
        cut = check_max_length(
            ctx.setup.task,
            ctx.setup.train_examples,
            cfg.max_length,
            limit=model_positions(hf_config),
        )
        if cut:
            ctx.say(f"warning: {cut}", error=True)
        ctx.kl_plan = make_kl_plan(ctx)  # refuses a KL that can never act, before writing
    if ctx.main:
        ctx.out.mkdir(parents=True, exist_ok=True)
        if ctx.lock is None:
            ctx.lock = lock_run_dir(ctx.out)
        write_json(ctx.files.config, cfg.to_dict())
        if ctx.kl_plan is not None and ctx.setup.model.is_bayesian:
            print(ctx.kl_plan.describe(), flush=True)
            write_json(ctx.files.kl_plan, plan_dict(ctx.kl_plan))
    return resume


def _check_folder(ctx: RunContext, resume: bool) -> bool:
    """A folder that holds a run is refused unless resumed; one whose last start saved
    nothing is cleared (a corrected config starts afresh)."""
    files, out = ctx.files, ctx.out
    saved = files.config
    if saved.exists() and not files.holds_progress():
        ctx.acc.wait_for_everyone()  # every process has looked before process 0 clears
        if ctx.main:
            ctx.lock = lock_run_dir(out)  # not while another process starts it
            files.clear_attempt()
            ctx.say(
                f"{out}: its last start saved nothing (no checkpoint, adapter or results); "
                "starting afresh"
            )
        ctx.acc.wait_for_everyone()
        return False  # nothing to resume: no second "starting a new one" line
    if saved.exists() and not resume:
        if files.results("final").is_file():
            raise ConfigError(
                f"{out} holds a finished run; evaluate it with `blob eval {out}` "
                "or choose another output_dir"
            )
        raise ConfigError(
            f"{out} already holds a run; pass --resume to continue it or choose another output_dir"
        )
    if resume and not saved.exists():
        ctx.say(f"--resume: {out} holds no run yet; starting a new one")
    if resume and saved.exists():
        check_resumable(ctx.cfg, saved)
    return resume


def check_resumable(cfg: RunConfig, saved: Path) -> None:
    """--resume continues the same run: the config it was started with (output_dir aside:
    a moved run resumes; sharding aside: checkpoints hold whole tensors either way), read
    through RunConfig so keys added since take the value the run used."""
    previous = as_saved(RunConfig.from_saved(json.loads(saved.read_text())))
    current = as_saved(cfg)
    changed = sorted(
        k
        for k in set(previous) | set(current)
        if k not in ("output_dir", "sharding") and previous.get(k) != current.get(k)
    )
    if changed:
        raise ConfigError(
            f"--resume with a different config (changed: {changed}); resume with the "
            f"config saved in {saved}"
        )


def finished(ctx: RunContext) -> dict[str, Any] | None:
    """A resumed run that already ended: its results, unchanged (None otherwise). It ended
    when its results and its adapters (every ensemble member's) are all there."""
    files = ctx.files
    saved, done = files.config, files.results("final")
    parts = get_method(ctx.cfg.method, ctx.cfg.method_options).parts()
    adapter = all(files.part(p).adapter.is_dir() for p in parts)
    if not (saved.is_file() and done.is_file() and adapter):
        return None
    check_resumable(ctx.cfg, saved)
    rows = json.loads(done.read_text())
    ctx.say(
        f"{ctx.out} is a finished run (results-final.json): nothing to resume; "
        "`blob eval` re-evaluates it"
    )
    steps = rows[0]["steps"] if rows else ctx.cfg.max_steps
    return {"steps": steps, "results": rows, "already_finished": True}


def model_family(ctx: RunContext) -> str:
    """`encoder` (a classification task) or `causal-lm`: whose authors' budget applies."""
    from ..tasks import ClassificationTask

    return "encoder" if isinstance(ctx.setup.task, ClassificationTask) else "causal-lm"


def make_kl_plan(ctx: RunContext) -> KLPlan:
    """The KL schedule and kl_lr of this run (see kl_plan): budget-aware by default."""
    return replace(_kl_plan(ctx), optim_scheme=ctx.cfg.optim_scheme)


def _kl_plan(ctx: RunContext) -> KLPlan:
    cfg, setup = ctx.cfg, ctx.setup
    n_train = len(setup.train_examples)
    global_batch = cfg.batch_size * ctx.acc.num_processes * cfg.grad_accum
    kind = cfg.kl_schedule or setup.method.kl_schedule
    warmup = int(cfg.warmup_ratio * cfg.max_steps)
    adapter = setup.model.adapter_config
    sigma0 = init_sigma_mean(adapter.init_std_eps)
    cycled = kind in ("blob", "uniform") and setup.model.is_bayesian
    family = model_family(ctx)
    if cfg.kl_plan == "budget" and cycled:
        return plan_budget(
            n_train, global_batch, cfg.max_steps, warmup, family,
            adapter.prior_std, sigma0, cfg.kl_clock_scale, kind,
        )  # fmt: skip
    schedule = KLSchedule(kind, n_train, global_batch, cfg.gamma, cycle=cfg.kl_cycle)
    if kind == "blob" and cycled and schedule.cycle_length > cfg.max_steps:
        raise ConfigError(
            f"the KL can never act: its cycle is {schedule.cycle_length} steps (the "
            f"authors' M for {n_train} examples at global batch {global_batch}) and the "
            f"run has {cfg.max_steps}; set kl_plan=budget, or kl_cycle <= max_steps"
        )
    kl_lr = cfg.kl_lr if cfg.kl_lr is not None else AUTHORS[family].kl_lr
    return plan_authors(schedule, kl_lr, cfg.max_steps, warmup, adapter.prior_std, sigma0)
