"""The training loop (Accelerate), evaluation, checkpoints and resume.

Data flows one way: config -> model + adapters -> task batches -> method -> predictions
-> metrics. The loop owns the order of examples (a seeded stream of per-epoch
permutations, sliced per process), so a resumed run sees exactly the batches, noise
and dropout draws the uninterrupted run would have seen.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import accelerate.utils
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from safetensors.torch import save_file
from torch import nn
from tqdm.auto import tqdm

from .adapter_io import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    load_adapter_weights,
    load_init_weights,
    save_adapter,
)
from .adapter_model import BlobModel
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .config import AdapterConfig
from .errors import BlobLoraError, CheckpointError, ConfigError
from .kl_plan import AUTHORS, KLPlan, init_sigma_mean, plan_authors, plan_budget
from .kl_schedule import KLSchedule
from .methods import get_method
from .methods.base import PostTrainContext
from .optim import AdapterOptimizer, OptimConfig
from .posterior_stats import (
    SAME_PROBS_TOL,
    health_line,
    health_warnings,
    plot_sigma,
    sigma_stats,
)
from .run_config import RunConfig

RUN_CONFIG = "run_config.json"
KL_PLAN = "kl_plan.json"
SIGMA_LOG = "sigma_log.jsonl"  # per-layer sigma statistics, ~50 rows a run


class TrainingDivergedError(BlobLoraError):
    """The loss became NaN or infinite."""


class Scorer(nn.Module):
    """Batch -> class logits, as a module so DDP sees the forward of the whole step."""

    def __init__(self, model: BlobModel, task: Any) -> None:
        super().__init__()
        self.blob = model
        self.task = task

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.task.class_logits(self.blob.model, batch)


def example_stream(n: int, seed: int, start: int, count: int) -> list[int]:
    """Positions [start, start+count) of the infinite stream of per-epoch permutations."""
    out: list[int] = []
    pos = start
    while len(out) < count:
        epoch, offset = divmod(pos, n)
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=gen).tolist()
        take = min(count - len(out), n - offset)
        out.extend(perm[offset : offset + take])
        pos += take
    return out


GROUP_BATCHES = 50  # batches re-cut together by `group_by_length` (HF uses 50 too)


def grouped_batch(sizes: list[int], seed: int, index: int, batch: int) -> list[int]:
    """Batch `index` of the stream when each run of GROUP_BATCHES consecutive batches is
    re-cut by length: the same examples at the same point of training, less padding.
    The re-cut batches are visited in a seeded random order, so length does not follow
    the learning-rate schedule."""
    chunk, within = divmod(index, GROUP_BATCHES)
    ids = example_stream(len(sizes), seed, chunk * GROUP_BATCHES * batch, GROUP_BATCHES * batch)
    ids.sort(key=lambda i: sizes[i])
    gen = torch.Generator().manual_seed(seed * 100_003 + chunk + 2**40)
    k = int(torch.randperm(GROUP_BATCHES, generator=gen)[within])
    return ids[k * batch : (k + 1) * batch]


@dataclass
class Setup:
    """Everything a run needs, built once from the config."""

    config: RunConfig
    model: BlobModel
    tokenizer: Any
    task: Any
    method: Any
    train_examples: list
    eval_examples: dict[str, list] = field(default_factory=dict)


def build_setup(
    cfg: RunConfig, with_train: bool = True, adapter_config: AdapterConfig | None = None
) -> Setup:
    """`adapter_config`: rebuild a saved adapter as it was (e.g. TFB's Bayesianized one)
    instead of the method's fresh one."""
    from .data import load_examples
    from .models import load_model
    from .tasks import build_task

    method = get_method(cfg.method, cfg.method_options)
    kind = resolve_task_kind(cfg)
    check_compatible(cfg, kind)
    check_method_settings(cfg, method)
    # a classifier's label count comes from the training data, also when only evaluating
    # (an evaluation slice may miss the highest label)
    train_examples = (
        load_examples(cfg.dataset, cfg.train_split, limit=cfg.train_limit, seed=cfg.seed)
        if with_train or kind == "classification"
        else []
    )
    eval_examples = {
        cfg.dataset: load_examples(cfg.dataset, cfg.eval_split, limit=cfg.eval_limit, seed=cfg.seed)
    }
    num_labels = None
    if kind == "classification":
        labels = [ex.label for ex in train_examples + eval_examples[cfg.dataset]]
        num_labels = max(labels) + 1
        _check_label_set(cfg.dataset, labels)
        if not with_train:
            train_examples = []
    model_kind = "seq-cls" if kind == "classification" else "causal-lm"
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_model(cfg.model, kind=model_kind, num_labels=num_labels)
    task = build_task(kind, tokenizer=tokenizer, max_length=cfg.max_length, num_labels=num_labels)
    adapter = cfg.adapter
    if kind == "classification":
        adapter = head_adapter_config(model, adapter, cfg.head)
    torch.manual_seed(cfg.seed)
    blob = BlobModel(model, adapter_config) if adapter_config else method.build(model, adapter)
    return Setup(cfg, blob, tokenizer, task, method, train_examples, eval_examples)


def _check_label_set(dataset: str, labels: list[int]) -> None:
    """Classes 0..K-1, each present: one stray label (a typo, a 5 among 0/1) would
    silently widen the classifier head."""
    counts = {label: labels.count(label) for label in set(labels)}
    missing = sorted(set(range(max(counts) + 1)) - set(counts))
    if missing:
        rare = sorted(k for k, c in counts.items() if c <= max(1, len(labels) // 1000))
        raise ConfigError(
            f"dataset {dataset_label(dataset)!r}: labels {sorted(counts)} skip {missing}; "
            f"classes must be 0..K-1 (rarest labels: {rare}): fix those rows or map the labels "
            "with label_map"
        )


def check_method_settings(cfg: RunConfig, method: Any) -> None:
    """A setting the method fixes (MAP's weight decay, MC dropout's rate) given with
    another value is an error, never silently replaced."""
    fixed = [
        ("weight_decay", cfg.weight_decay, method.weight_decay, None),
        ("adapter.dropout", cfg.adapter.dropout, method.adapter_dropout, 0.0),
    ]
    for key, given, wanted, unset in fixed:
        if wanted is not None and given not in (unset, wanted):
            raise ConfigError(
                f"{key}={given} conflicts with method {cfg.method!r}, which uses {key}={wanted}; "
                f"drop {key} or use another method"
            )


def check_compatible(cfg: RunConfig, kind: str) -> None:
    """Dataset, task and model agree, checked before any model or data is loaded."""
    from .data.specs import parse_spec
    from .models import model_family

    names = [cfg.dataset, *cfg.eval_datasets]
    spec, options = parse_spec(cfg.dataset)
    single = spec.files and set(spec.files) == {"*"} and "{split}" not in spec.files["*"]
    if single and not (spec.resplit or options.dev):
        raise ConfigError(
            f"dataset {dataset_label(cfg.dataset)!r} is one file for every split, so the run "
            "would be evaluated on its own training rows; give 'paths' per split (train, "
            "validation), or 'resplit': 0.2 to hold out a fixed 20% for evaluation"
        )
    for name in names:
        spec, _ = parse_spec(name)
        # fixed answer words (BoolQ, RTE-qa) have a classification view: (question, context)
        words = getattr(spec.fields, "choice_words", None) is not None
        if spec.kind != kind and not (kind == "classification" and words):
            holds = "multiple-choice questions" if spec.kind == "choice" else "texts with labels"
            fix = (
                "use a causal LM (e.g. model=gemma-270m) with task=choice"
                if spec.kind == "choice"
                else "use task=classification (an encoder such as model=minilm)"
            )
            raise ConfigError(
                f"dataset {dataset_label(name)!r} holds {holds} and the task is {kind}: {fix}"
            )
    if kind == "choice" and model_family(cfg.model) == "encoder":
        raise ConfigError(
            f"model {cfg.model!r} is an encoder: multiple choice is scored from a causal LM's "
            "next-token logits; use a causal LM (e.g. model=gemma-270m) or a classification "
            "dataset"
        )


def resolve_task_kind(cfg: RunConfig) -> str:
    if cfg.task != "auto":
        if cfg.task not in ("choice", "classification"):
            raise ConfigError(f"task {cfg.task!r} is unknown; use auto, choice or classification")
        return cfg.task
    from .models import model_family

    return "classification" if model_family(cfg.model) == "encoder" else "choice"


def head_adapter_config(model: nn.Module, adapter: Any, head: str) -> Any:
    """How a fresh classifier head is trained: in full (`train`), with adapters on its
    Linear layers over a frozen random init (`lora`, the paper's RoBERTa setting), or not
    at all (`frozen`)."""
    from dataclasses import replace

    head_names = [
        n
        for n, m in model.named_modules()
        if (n == "classifier" or n.startswith("classifier.")) and isinstance(m, nn.Linear)
    ]
    if head == "train":
        return replace(
            adapter, modules_to_save=sorted(set(adapter.modules_to_save) | {"classifier"})
        )
    if head == "lora":
        targets = adapter.target_modules
        if isinstance(targets, str):
            raise ConfigError("head=lora needs target_modules as a list")
        return replace(adapter, target_modules=sorted(set(targets) | set(head_names)))
    if head == "frozen":
        return adapter
    raise ConfigError(f"head {head!r} is unknown; use train, lora or frozen")


class Runner:
    """Train, checkpoint, resume and evaluate one run."""

    def __init__(self, cfg: RunConfig, accelerator: Accelerator | None = None) -> None:
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        if accelerator is None:
            _refuse_accelerate_mixed_precision()
            accelerator = Accelerator(
                gradient_accumulation_steps=cfg.grad_accum,
                cpu=_cpu_only(),
                mixed_precision="no",  # ours is `precision`: accelerate's would scale losses
            )
        self.acc = accelerator
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

    # -- set-up -----------------------------------------------------------------------------
    def prepare(self, resume: bool) -> None:
        cfg = self.cfg
        saved = self.out / RUN_CONFIG
        if saved.exists() and not resume:
            raise ConfigError(
                f"{self.out} already holds a run; pass --resume to continue it or choose "
                "another output_dir"
            )
        if resume and not saved.exists() and self.acc.is_main_process:
            print(f"--resume: {self.out} holds no run yet; starting a new one", flush=True)
        if resume and saved.exists():
            self.check_resumable(saved)
        self.acc.wait_for_everyone()  # every process checked before process 0 writes below
        self.setup = build_setup(cfg)
        self.setup.model.to(self.acc.device)  # also for paths that never train (post-hoc)
        if cfg.init_from:  # before anything is written: a bad path leaves no output
            if self.setup.method.members > 1:
                raise ConfigError(
                    f"init_from does not apply to {cfg.method!r}: its members "
                    "are trained independently from scratch"
                )
            meta = load_init_weights(self.setup.model, cfg.init_from)
            self.trained_steps = int(meta.get("steps", 0)) + cfg.max_steps
        if cfg.max_steps > 0:  # refuses a KL that can never act before anything is written
            self.kl_plan = self.make_kl_plan()
        if self.acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            self._lock = _lock_run_dir(self.out)
            _write_json(saved, cfg.to_dict())
            if self.kl_plan is not None and self.setup.model.is_bayesian:
                print(self.kl_plan.describe(), flush=True)
                _write_json(self.out / KL_PLAN, _plan_dict(self.kl_plan))

    def check_resumable(self, saved: Path) -> None:
        """--resume continues the same run: the config it was started with (output_dir
        aside: a moved run resumes), read through RunConfig so keys added since take their
        defaults."""
        previous = _as_saved(RunConfig.from_dict(json.loads(saved.read_text())))
        current = _as_saved(self.cfg)
        changed = sorted(
            k
            for k in set(previous) | set(current)
            if k != "output_dir" and previous.get(k) != current.get(k)
        )
        if changed:
            raise ConfigError(
                f"--resume with a different config (changed: {changed}); resume with the "
                f"config saved in {saved}"
            )

    def finished(self) -> dict[str, Any] | None:
        """A resumed run that already ended: its results, unchanged (None otherwise)."""
        saved, done = self.out / RUN_CONFIG, self.out / "results-final.json"
        if not (saved.is_file() and done.is_file()):
            return None
        self.check_resumable(saved)
        rows = json.loads(done.read_text())
        if self.acc.is_main_process:
            print(
                f"{self.out} is a finished run (results-final.json): nothing to resume; "
                "`blob eval` re-evaluates it",
                flush=True,
            )
        return {"steps": rows[0]["steps"] if rows else self.cfg.max_steps, "results": rows}

    def family(self) -> str:
        from .tasks import ClassificationTask

        return "encoder" if isinstance(self.setup.task, ClassificationTask) else "causal-lm"

    def kl_lr_default(self) -> float:
        return self.cfg.kl_lr if self.cfg.kl_lr is not None else AUTHORS[self.family()].kl_lr

    def make_kl_plan(self) -> KLPlan:
        """The KL schedule and kl_lr of this run (see kl_plan): budget-aware by default."""
        cfg, setup = self.cfg, self.setup
        n_train = len(setup.train_examples)
        global_batch = cfg.batch_size * self.acc.num_processes * cfg.grad_accum
        kind = cfg.kl_schedule or setup.method.kl_schedule
        warmup = int(cfg.warmup_ratio * cfg.max_steps)
        adapter = setup.model.adapter_config
        sigma0 = init_sigma_mean(adapter.init_std_eps)
        cycled = kind in ("blob", "uniform") and setup.model.is_bayesian
        if cfg.kl_plan == "budget" and cycled:
            return plan_budget(
                n_train, global_batch, cfg.max_steps, warmup, self.family(),
                adapter.prior_std, sigma0, cfg.kl_clock_scale, kind,
            )  # fmt: skip
        schedule = KLSchedule(kind, n_train, global_batch, cfg.gamma, cycle=cfg.kl_cycle)
        if kind == "blob" and cycled and schedule.cycle_length > cfg.max_steps:
            raise ConfigError(
                f"the KL can never act: its cycle is {schedule.cycle_length} steps (the "
                f"authors' M for {n_train} examples at global batch {global_batch}) and the "
                f"run has {cfg.max_steps}; set kl_plan=budget, or kl_cycle <= max_steps"
            )
        return plan_authors(
            schedule, self.kl_lr_default(), cfg.max_steps, warmup, adapter.prior_std, sigma0
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
            last = latest_checkpoint(self.out / "checkpoints")
            raise BlobLoraError(
                f"cannot write in {self.out}: {_write_failure_reason(err)}; the last good "
                f"checkpoint is {last or 'none (nothing to resume from)'}; free space or fix "
                "permissions, then run again with --resume"
            ) from err
        finally:
            if self._lock is not None:  # released on every exit, errors and interrupts too
                self._lock.close()
                self._lock = None

    def _train(self, resume: bool) -> dict[str, Any]:
        self.prepare(resume)
        cfg, setup = self.cfg, self.setup
        if not setup.train_examples:
            raise ConfigError(f"dataset {cfg.dataset!r} split {cfg.train_split!r} is empty")
        members = getattr(setup.method, "members", 1)
        states = []
        for member in range(members):
            run_dir = self.out if members == 1 else self.out / f"member-{member}"
            seed, data_seed = cfg.seed, cfg.seed
            if members > 1:
                seed, data_seed = setup.method.member_seeds(cfg.seed, member)
            if member > 0:
                torch.manual_seed(seed)
                setup.model.reset_adapters()
            if members > 1 and (run_dir / "adapter").is_dir():
                load_adapter_weights(setup.model, run_dir / "adapter")  # finished member
            elif cfg.max_steps == 0 and cfg.init_from:
                pass  # post-hoc only: the adapter comes trained
            else:
                self._fit(run_dir, resume, seed, data_seed)
            states.append({k: v.clone() for k, v in setup.model.adapter_state_dict().items()})
        if members > 1:
            setup.model.member_states = states
        with self.autocast():  # Laplace turns it off for its fit; TFB's search runs in it
            setup.model = setup.method.post_train(setup.model, self.post_train_context())
        if self.acc.is_main_process and members == 1:
            save_adapter(
                setup.model,
                self.out / "adapter",
                extra={"run": cfg.to_dict(), "steps": self.trained_steps},
            )
        self.acc.wait_for_everyone()
        results = self.evaluate()
        return {"steps": self.trained_steps, "results": results, **self.posterior_health()}

    def posterior_health(self) -> dict[str, Any]:
        """The sigma line and the warnings a Bayesian run ends with (empty otherwise)."""
        stats = sigma_stats(self.setup.model)
        if stats is None:
            return {}
        trained = self.cfg.max_steps > 0 and self.cfg.method != "tfb"
        sigma0 = init_sigma_mean(self.setup.model.adapter_config.init_std_eps) if trained else None
        return {
            "posterior": health_line(stats, sigma0),
            "warnings": health_warnings(stats, sigma0, self._same_as_mean),
        }

    def load_finished(self) -> None:
        """Rebuild a finished run's predicting model from its directory (`blob eval`):
        its adapter (or every ensemble member's), and a post-hoc fit that is not saved
        with the adapter (Laplace) redone on the training data."""
        from .adapter_io import read_adapter_config

        cfg = self.cfg
        method = get_method(cfg.method, cfg.method_options)
        members = method.members
        dirs = (
            [self.out / "adapter"]
            if members == 1
            else [self.out / f"member-{k}" / "adapter" for k in range(members)]
        )
        for d in dirs:
            if not (d / CONFIG_FILE).is_file():
                raise ConfigError(f"{self.out} is not a finished {cfg.method} run: {d} is missing")
        meta = read_adapter_config(dirs[0])
        saved = AdapterConfig.from_dict(meta["config"])
        refit = not method.posterior_saved
        self.setup = build_setup(cfg, with_train=refit, adapter_config=saved)
        model = self.setup.model
        model.to(self.acc.device)
        states = []
        for d in dirs:
            load_adapter_weights(model, d)
            states.append({k: v.clone() for k, v in model.adapter_state_dict().items()})
        if members > 1:
            model.member_states = states
        self.trained_steps = int(meta.get("steps", cfg.max_steps))
        if refit:
            with self.autocast():
                self.setup.model = method.post_train(model, self.post_train_context())

    def post_train_context(self) -> PostTrainContext:
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

        return PostTrainContext(
            train_batches=lambda: batches(list(range(len(examples)))),
            anchor_batches=lambda: batches(anchor),
            class_logits=class_logits,
            n_train=len(examples),
            seed=cfg.seed,
        )

    def _fit(self, run_dir: Path, resume: bool, seed: int, data_seed: int | None = None) -> int:
        """The optimization loop of one adapter; checkpoints and logs under `run_dir`.
        `seed` drives the noise and dropout streams, `data_seed` the order of examples."""
        data_seed = seed if data_seed is None else data_seed
        cfg, setup, acc = self.cfg, self.setup, self.acc
        blob = setup.model
        n_train = len(setup.train_examples)
        plan = self.kl_plan or self.make_kl_plan()
        schedule = plan.schedule
        weight_decay = next(
            (w for w in (setup.method.weight_decay, cfg.weight_decay) if w is not None), 0.0
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
        scorer = acc.prepare(Scorer(blob, setup.task))
        step = 0
        ckpt_dir = run_dir / "checkpoints"
        log_path = run_dir / "metrics.jsonl"
        sigma_path = run_dir / SIGMA_LOG
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
                        logits = scorer(batch)
                    nll = F.cross_entropy(logits.float(), batch["labels"])
                    if not self._all_finite(nll):
                        bar.close()
                        last = latest_checkpoint(ckpt_dir)
                        raise TrainingDivergedError(
                            f"loss is not finite at step {step} (here {nll.item()}); the last "
                            "good checkpoint is "
                            f"{last or 'none'}; lower lr (now {cfg.lr}) or set max_grad_norm"
                        )
                    acc.backward(nll)
                stats = torch.stack(
                    [
                        nll.detach().float(),
                        (logits.argmax(-1) == batch["labels"]).sum().float(),
                        torch.tensor(float(len(batch["labels"])), device=nll.device),
                    ]
                )
                if acc.num_processes > 1:
                    stats = acc.reduce(stats, reduction="sum")
                    stats[0] = stats[0] / acc.num_processes
                nll_sum += stats[0].item() / cfg.grad_accum
                correct += int(stats[1].item())
                seen += int(stats[2].item())
            weight = schedule.weight(step)
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
                    with open(run_dir / "eval_log.jsonl", "a") as fh:
                        fh.write(json.dumps({"step": step, **rows[0]}) + "\n")
                blob.train()
            if cfg.save_every and step % cfg.save_every == 0 and step < cfg.max_steps:
                bad = [n for n, p in blob.named_trainable_parameters() if not p.isfinite().all()]
                if bad:  # never write a checkpoint that a resume could not recover from
                    bar.close()
                    raise TrainingDivergedError(
                        f"adapter weights became NaN/inf by step {step} ({bad[0]}); the last "
                        f"good checkpoint is {latest_checkpoint(ckpt_dir) or 'none'}; lower lr "
                        f"(now {cfg.lr}) or set max_grad_norm"
                    )
                self._save_checkpoint(ckpt_dir, step, optimizer)
        bar.close()
        if board is not None:
            board.close()
        if acc.is_main_process:
            _jsonl_to_csv(log_path, run_dir / "metrics.csv")
            if blob.is_bayesian and log_path.exists():
                rows = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()]
                plot_sigma(
                    rows, run_dir / "plots" / "sigma.png", f"{cfg.method}: the posterior std"
                )
            if run_dir != self.out:
                save_adapter(blob, run_dir / "adapter", extra={"steps": step})
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

    def _save_checkpoint(self, ckpt_dir: Path, step: int, optimizer: AdapterOptimizer) -> None:
        own = {
            "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        rng = [own]
        if self.acc.num_processes > 1:  # every process's streams, so a resume continues each
            rng = accelerate.utils.gather_object(rng)
        if not self.acc.is_main_process:
            return
        state = {"step": step, "optimizer": optimizer.state_dict(), "rng": rng}
        blob = self.setup.model
        adapter = {
            CONFIG_FILE: {
                "format": "blob-lora-adapter",
                "version": 1,
                "config": blob.adapter_config.to_dict(),
            },
            WEIGHTS_FILE: blob.adapter_state_dict(),
        }
        save_checkpoint(ckpt_dir / f"step-{step}", state, files=adapter)
        for old in sorted(ckpt_dir.glob("step-*"), key=lambda p: int(p.name[5:]))[:-2]:
            shutil.rmtree(old, ignore_errors=True)

    def _restore(self, path: Path, optimizer: AdapterOptimizer) -> int:
        state = load_checkpoint(path)
        try:
            load_adapter_weights(self.setup.model, path)
            optimizer.load_state_dict(state["optimizer"])
        except (KeyError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"checkpoint {path} does not match this run: {err}") from err
        streams = state.get("rng") or [  # checkpoints of 0.1 kept one process's state
            {"cpu": state["rng_cpu"], "cuda": state.get("rng_cuda", [])}
        ]
        if len(streams) != self.acc.num_processes:
            raise CheckpointError(
                f"checkpoint {path} was written by {len(streams)} process(es), this run has "
                f"{self.acc.num_processes}; resume with the same number of processes"
            )
        own = streams[self.acc.process_index]
        torch.set_rng_state(own["cpu"])
        if torch.cuda.is_available() and own["cuda"]:
            torch.cuda.set_rng_state_all(own["cuda"])
        return int(state["step"])

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(
        self,
        samples: list[int] | None = None,
        datasets: list[str] | None = None,
        tag: str = "final",
        write: bool = True,
    ) -> list[dict[str, Any]]:
        """Predict every example of each evaluation set with N samples, for each N."""
        from .data import load_examples
        from .metrics import classification_metrics

        cfg, setup = self.cfg, self.setup
        samples = (
            samples
            if samples is not None
            else list(
                cfg.eval_samples
                if cfg.eval_samples is not None
                else setup.method.default_eval_samples
            )
        )
        names = datasets if datasets is not None else [cfg.dataset, *cfg.eval_datasets]
        rows = []
        setup.model.eval()
        bayes = sigma_stats(setup.model) if tag == "final" or write else None
        if tag == "final":
            self._same_as_mean = []
        for name in names:
            if name not in setup.eval_examples:
                split = cfg.eval_split if name == cfg.dataset else ood_split(name)
                setup.eval_examples[name] = load_examples(
                    name, split, limit=cfg.eval_limit, seed=cfg.seed
                )
            examples = setup.eval_examples[name]
            at_mean = None
            for n in samples:
                probs, labels, mi = self.predict(examples, n, desc=f"eval {dataset_label(name)}")
                if not self.acc.is_main_process:
                    continue
                if n == 0:
                    at_mean = probs
                elif at_mean is not None and name == cfg.dataset and tag == "final":
                    if float((probs - at_mean).abs().max()) <= SAME_PROBS_TOL:
                        self._same_as_mean.append(n)
                metrics = classification_metrics(probs.numpy(), labels.numpy())
                row = {
                    "model": cfg.model,
                    "dataset": dataset_label(name),
                    "method": cfg.method,
                    "n_samples": n,
                    "seed": cfg.seed,
                    "steps": getattr(self, "trained_steps", cfg.max_steps),
                    "n_examples": len(labels),
                    **{k: float(v) for k, v in metrics.items()},
                    "majority_acc": 100.0 * float(torch.bincount(labels).max()) / len(labels),
                    **(bayes or {}),
                }
                rows.append(row)
                if write:
                    self._write_eval(name, n, probs, labels, mi, tag)
        if write and self.acc.is_main_process:
            _write_json(self.out / f"results-{tag}.json", rows)
        return rows

    @torch.no_grad()
    def predict(
        self, examples: list, n_samples: int, desc: str = "eval"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(probs, labels, mutual information) for every example, sharded over processes
        and gathered back in order, none dropped."""
        acc, setup = self.acc, self.setup
        from .data import text_size

        mine = list(range(acc.process_index, len(examples), acc.num_processes))
        mine.sort(key=lambda j: text_size(examples[j]))  # similar lengths: less padding
        out: list[tuple[int, list[float], int, float]] = []
        bs = self.cfg.eval_batch_size
        bar = tqdm(
            total=len(mine),
            desc=f"{desc} N={n_samples}",
            unit="ex",
            disable=not acc.is_main_process,
            dynamic_ncols=True,
            leave=False,
        )
        for i in range(0, len(mine), bs):
            idx = mine[i : i + bs]
            batch = self._to_device(setup.task.collate([examples[j] for j in idx]))
            with self.autocast():
                probs, samples = setup.method.predict(
                    setup.model,
                    lambda b=batch: setup.task.class_logits(setup.model.model, b).float(),
                    n_samples,
                )
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
    ) -> None:
        """Reliability diagram + the raw predictions (for OOD-detection AUROC later)."""
        from .report.reliability import plot_reliability

        safe = dataset_label(name)
        pred_dir = self.out / "predictions"
        pred_dir.mkdir(parents=True, exist_ok=True)
        final = pred_dir / f"{tag}-{safe}-N{n}.safetensors"
        tmp = final.with_name(f".{final.name}.tmp")
        save_file(
            {"probs": probs.contiguous(), "labels": labels, "mutual_information": mi}, str(tmp)
        )
        os.replace(tmp, final)
        plot_reliability(
            probs.numpy(),
            labels.numpy(),
            self.out / "plots" / f"{tag}-{safe}-N{n}.png",
            title=f"{self.cfg.method} on {name}, N={n}",
        )


def _plan_dict(plan: KLPlan) -> dict[str, Any]:
    return {
        "plan": plan.kind,
        "cycle": plan.schedule.cycle_length,
        "cycles": plan.schedule.cycles,
        "kl_lr": plan.kl_lr,
        "clock": plan.clock,
        "target_clock": plan.target_clock,
        "reference": plan.reference,
        "reference_cycles": plan.reference_cycles,
        "sigma0": plan.sigma0,
        "predicted_sigma": plan.predicted_sigma,
        "kl_only_mean_shrink": plan.mean_shrink,
        "text": plan.describe(),
    }


WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR}


def _is_write_failure(err: BaseException) -> bool:
    """A full disk or a folder we may not write: safetensors reports them as its own error
    type with the OS error number in the text."""
    if isinstance(err, OSError):
        return err.errno in WRITE_ERRNOS
    text = str(err)
    return type(err).__name__ == "SafetensorError" and any(
        f"os error {n})" in text for n in WRITE_ERRNOS
    )


def _write_failure_reason(err: BaseException) -> str:
    if isinstance(err, OSError):
        return os.strerror(err.errno) if err.errno else str(err)
    return str(err).split(": ", 1)[-1]


LOCK_FILE = ".blob-lora.lock"


def _lock_run_dir(out: Path) -> Any:
    """An exclusive lock on the run folder for this process's lifetime (released by the OS
    when it exits, however it exits): two `blob train` on one folder would interleave
    checkpoints and logs."""
    import fcntl

    handle = open(out / LOCK_FILE, "a+")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(
            f"another process is training in {out} (it holds {out / LOCK_FILE}); wait for it "
            "to finish or choose another output_dir"
        ) from None
    return handle


def _as_saved(cfg: RunConfig) -> dict[str, Any]:
    """A config as run_config.json holds it (tuples as lists), for comparing on resume."""
    return json.loads(json.dumps(cfg.to_dict()))


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


def _cpu_only() -> bool:
    """Accelerate runs several CPU processes as one job (gloo) only when told `cpu=True`;
    without it, `accelerate launch --num_processes 2` on a machine with no accelerator
    gives two independent single-process runs."""
    return not any(getattr(accelerate.utils, name)() for name in _ACCELERATOR_CHECKS)


def dataset_label(name: str) -> str:
    """A file-name-safe label: the short name, or the `name`/path stem of a JSON spec."""
    if name.lstrip().startswith("{"):
        try:
            spec = json.loads(name)
            name = str(spec.get("name") or Path(str(spec.get("path", "custom"))).stem)
        except json.JSONDecodeError:
            name = "custom"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def ood_split(name: str) -> str:
    """MMLU subjects are evaluated on test (as the paper); everything else on validation."""
    return "test" if name.startswith("mmlu") else "validation"


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def _mutual_information(samples: torch.Tensor) -> torch.Tensor:
    """(S, B, C) sampled probabilities -> (B,) H(mean) - mean H (0 for one sample)."""

    def entropy(p: torch.Tensor) -> torch.Tensor:
        return -(p * torch.log(p.clamp_min(1e-12))).sum(-1)

    return (entropy(samples.mean(0)) - entropy(samples).mean(0)).clamp_min(0.0)


def _tensorboard(run_dir: Path) -> Any:
    """A TensorBoard writer under run_dir/tensorboard when tensorboard is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows past the restored step (they belong to the interrupted attempt)."""
    if not path.exists():
        return
    keep = [
        ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step
    ]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(ln + "\n" for ln in keep))
    os.replace(tmp, path)


def _jsonl_to_csv(src: Path, dst: Path) -> None:
    if not src.exists():
        return
    rows = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    if not rows:
        return
    tmp = dst.with_name(f".{dst.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, dst)
