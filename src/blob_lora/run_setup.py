"""A run's set-up: model, task, method and data from the config, checked first; the run folder."""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .adapter_io import load_init_weights
from .adapter_model import BlobModel
from .config import AdapterConfig
from .data.specs import DEV_SEED
from .errors import ConfigError
from .gen_setup import DATASET_KINDS, check_generation
from .kl_plan import AUTHORS, KLPlan, init_sigma_mean, plan_authors, plan_budget
from .kl_schedule import KLSchedule
from .methods import get_method
from .quantization import bnb_config
from .run_config import GENERATE_NOT_SHARDED, RunConfig
from .run_files import (
    RunDir,
    _as_saved,
    _lock_run_dir,
    _plan_dict,
    _write_json,
    dataset_label,
)


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
    # training rows held out of training for post-hoc calibration (calib_fraction)
    calib_examples: list = field(default_factory=list)


def build_setup(
    cfg: RunConfig,
    with_train: bool = True,
    adapter_config: AdapterConfig | None = None,
    with_eval: bool = True,
) -> Setup:
    """`adapter_config`: rebuild a saved adapter as it was (e.g. TFB's Bayesianized one)
    instead of the method's fresh one. `with_eval=False`: no evaluation data (`blob
    generate` needs only the model)."""
    from .data import load_examples
    from .gen_setup import generation_model_kind, generation_targets
    from .models import load_model
    from .tasks import build_task
    from .tasks.generation import reference_pairs

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
    train_examples, calib_examples = carve_calibration(train_examples, cfg.calib_fraction)
    if kind == "generate":  # one training example per (input, reference)
        train_examples = reference_pairs(train_examples)
    eval_examples = {}
    if with_eval or kind == "classification":
        eval_examples[cfg.dataset] = load_examples(
            cfg.dataset, cfg.eval_split, limit=cfg.eval_limit, seed=eval_subset_seed(cfg)
        )
    num_labels = None
    if kind == "classification":
        labelled = {cfg.train_split: train_examples, cfg.eval_split: eval_examples[cfg.dataset]}
        labels = [ex.label for ex in train_examples + eval_examples[cfg.dataset]]
        num_labels = max(labels) + 1
        _check_label_set(cfg.dataset, labelled)
        if not with_train:
            train_examples = []
    model_kind = "seq-cls" if kind == "classification" else "causal-lm"
    if kind == "generate":
        model_kind = generation_model_kind(cfg.model)  # causal-lm or seq2seq
    torch.manual_seed(cfg.seed)
    compute = torch.bfloat16 if cfg.precision == "bf16" else torch.float32
    quantization = bnb_config(cfg.quantization, compute_dtype=compute)
    model, tokenizer = load_model(
        cfg.model, kind=model_kind, num_labels=num_labels, quantization=quantization
    )
    task = build_task(
        kind,
        tokenizer=tokenizer,
        max_length=cfg.max_length,
        num_labels=num_labels,
        encoder_decoder=model_kind == "seq2seq",
        max_target_length=cfg.max_target_length,
    )
    adapter = cfg.adapter
    if kind == "classification":
        adapter = head_adapter_config(model, adapter, cfg.head)
    if kind == "generate":
        adapter = generation_targets(model, adapter)
    torch.manual_seed(cfg.seed)
    blob = BlobModel(model, adapter_config) if adapter_config else method.build(model, adapter)
    return Setup(cfg, blob, tokenizer, task, method, train_examples, eval_examples, calib_examples)


def eval_subset_seed(cfg: RunConfig) -> int:
    """The seed that draws an eval_limit subset: fixed across a table's seeds when set."""
    return cfg.seed if cfg.eval_subset_seed is None else cfg.eval_subset_seed


def carve_calibration(examples: list, fraction: float) -> tuple[list, list]:
    """(rows to train on, rows held out for calibration): a fixed shuffle (the dev carve's
    seed, so with fraction 0.2 the held-out rows are exactly a `dev: 0.2` carve's), the
    same for every run seed and method, so a post-hoc fit never sees a trained row."""
    if not fraction or not examples:
        return examples, []
    order = list(range(len(examples)))
    random.Random(DEV_SEED).shuffle(order)
    n_held = round(len(examples) * fraction)
    if n_held == 0 or n_held == len(examples):
        raise ConfigError(
            f"calib_fraction={fraction} of {len(examples)} training rows leaves "
            f"{n_held} held out and {len(examples) - n_held} to train on; choose a fraction "
            "that leaves both sides at least one row"
        )
    held = sorted(order[:n_held])
    keep = sorted(order[n_held:])
    return [examples[i] for i in keep], [examples[i] for i in held]


def _check_label_set(dataset: str, splits: dict[str, list]) -> None:
    """Classes 0..K-1, each present: one stray label (a typo, a 5 among 0/1) would
    silently widen the classifier head."""
    labels = [ex.label for examples in splits.values() for ex in examples]
    counts = {label: labels.count(label) for label in set(labels)}
    missing = sorted(set(range(max(counts) + 1)) - set(counts))
    if missing:
        rare = sorted(k for k, c in counts.items() if c <= max(1, len(labels) // 1000))
        where = [
            f"{split} example {i}" + (f" (id {ex.id!r})" if ex.id is not None else "")
            for split, examples in splits.items()
            for i, ex in enumerate(examples)
            if ex.label in rare
        ]
        shown = ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
        raise ConfigError(
            f"dataset {_dataset_name(dataset)}: labels {sorted(counts)} skip {missing}; classes "
            f"must be 0..K-1; the rarest labels {rare} are at {shown} (positions from 0 "
            "in the split as loaded): fix those rows or map the labels with label_map"
        )


def _dataset_name(dataset: str) -> str:
    """A dataset as the user named it: its registry name, or the file(s) of a JSON spec."""
    if not dataset.lstrip().startswith("{"):
        return repr(dataset)
    spec = json.loads(dataset)
    paths = spec.get("paths")
    path = spec.get("path") or (paths.get("train") if isinstance(paths, dict) else paths)
    return f"{dataset_label(dataset)!r}" + (f" ({path})" if path else "")


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
            holds, fix = DATASET_KINDS[spec.kind]
            raise ConfigError(
                f"dataset {dataset_label(name)!r} holds {holds} and the task is {kind}: {fix}"
            )
    if kind == "generate":
        if cfg.sharding == "fsdp":
            raise ConfigError(GENERATE_NOT_SHARDED)
        check_generation(cfg, model_family(cfg.model))
    if kind == "choice" and model_family(cfg.model) == "encoder":
        raise ConfigError(
            f"model {cfg.model!r} is an encoder: multiple choice is scored from a causal LM's "
            "next-token logits; use a causal LM (e.g. model=gemma-270m) or a classification "
            "dataset"
        )


def resolve_task_kind(cfg: RunConfig) -> str:
    """The task: as configured, else `generate` for a generation dataset (dialogsum, a
    source/target mapping), `classification` for an encoder, `choice` for a causal LM."""
    if cfg.task != "auto":
        if cfg.task not in ("choice", "classification", "generate"):
            raise ConfigError(
                f"task {cfg.task!r} is unknown; use auto, choice, classification or generate"
            )
        return cfg.task
    from .data.specs import parse_spec
    from .models import model_family

    if parse_spec(cfg.dataset)[0].kind == "generate":
        return "generate"
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


def check_max_length(task: Any, examples: list, max_length: int, sample: int = 32) -> str:
    """Refuse a max_length that cuts every example of a sample of the training set (the
    run would train on stumps at full cost); a warning when it cuts most of them."""
    if not examples or getattr(task, "max_length", None) != max_length:
        return ""
    full, cut = [], []
    try:
        for example in examples[:sample]:
            cut.append(int(task.collate([example])["attention_mask"].sum()))
            task.max_length = 1 << 20
            full.append(int(task.collate([example])["attention_mask"].sum()))
            task.max_length = max_length
    finally:
        task.max_length = max_length
    if all(f > c for f, c in zip(full, cut, strict=True)):
        raise ConfigError(
            f"max_length={max_length} cuts every one of the first {len(full)} training "
            f"examples (the shortest has {min(full)} tokens); raise max_length to at least "
            f"{min(full)} (the longest has {max(full)})"
        )
    n_cut = sum(f > c for f, c in zip(full, cut, strict=True))
    if 2 * n_cut > len(full):
        return (
            f"max_length={max_length} cuts {n_cut} of the first {len(full)} training examples "
            f"(the longest has {max(full)} tokens); raise max_length if their ends matter"
        )
    return ""


class SetupMixin:
    """Runner's set-up: the run folder, resume checks and the KL plan."""

    def prepare(self, resume: bool) -> bool:
        """Check the folder, build the model, write the run's config; returns whether the
        run resumes (False after clearing a start that saved nothing)."""
        cfg = self.cfg
        files = RunDir(self.out)
        saved = files.config
        if saved.exists() and not files.holds_progress():
            self.acc.wait_for_everyone()  # every process has looked before process 0 clears
            if self.acc.is_main_process:
                self._lock = _lock_run_dir(self.out)  # not while another process starts it
                files.clear_attempt()
                print(
                    f"{self.out}: its last start saved nothing (no checkpoint, adapter or "
                    "results); starting afresh",
                    flush=True,
                )
            self.acc.wait_for_everyone()
            resume = False  # nothing to resume: no second "starting a new one" line
        elif saved.exists() and not resume:
            if files.results("final").is_file():
                raise ConfigError(
                    f"{self.out} holds a finished run; evaluate it with `blob eval {self.out}` "
                    "or choose another output_dir"
                )
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
        if cfg.max_steps > 0:
            cut = check_max_length(self.setup.task, self.setup.train_examples, cfg.max_length)
            if cut and self.acc.is_main_process:
                print(f"warning: {cut}", file=sys.stderr, flush=True)
        if cfg.max_steps > 0:  # refuses a KL that can never act before anything is written
            self.kl_plan = self.make_kl_plan()
        if self.acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            if self._lock is None:
                self._lock = _lock_run_dir(self.out)
            _write_json(saved, cfg.to_dict())
            if self.kl_plan is not None and self.setup.model.is_bayesian:
                print(self.kl_plan.describe(), flush=True)
                _write_json(RunDir(self.out).kl_plan, _plan_dict(self.kl_plan))
        return resume

    def check_resumable(self, saved: Path) -> None:
        """--resume continues the same run: the config it was started with (output_dir
        aside: a moved run resumes; sharding aside: checkpoints hold whole tensors either
        way), read through RunConfig so keys added since take the value the run used."""
        previous = _as_saved(RunConfig.from_saved(json.loads(saved.read_text())))
        current = _as_saved(self.cfg)
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

    def finished(self) -> dict[str, Any] | None:
        """A resumed run that already ended: its results, unchanged (None otherwise). It
        ended when its results and its adapters (every ensemble member's) are all there."""
        files = RunDir(self.out)
        saved, done = files.config, files.results("final")
        parts = get_method(self.cfg.method, self.cfg.method_options).parts()
        adapter = all(files.part(p).adapter.is_dir() for p in parts)
        if not (saved.is_file() and done.is_file() and adapter):
            return None
        self.check_resumable(saved)
        rows = json.loads(done.read_text())
        if self.acc.is_main_process:
            print(
                f"{self.out} is a finished run (results-final.json): nothing to resume; "
                "`blob eval` re-evaluates it",
                flush=True,
            )
        steps = rows[0]["steps"] if rows else self.cfg.max_steps
        return {"steps": steps, "results": rows, "already_finished": True}

    def family(self) -> str:
        from .tasks import ClassificationTask

        return "encoder" if isinstance(self.setup.task, ClassificationTask) else "causal-lm"

    def kl_lr_default(self) -> float:
        return self.cfg.kl_lr if self.cfg.kl_lr is not None else AUTHORS[self.family()].kl_lr

    def make_kl_plan(self) -> KLPlan:
        """The KL schedule and kl_lr of this run (see kl_plan): budget-aware by default."""
        return replace(self._kl_plan(), optim_scheme=self.cfg.optim_scheme)

    def _kl_plan(self) -> KLPlan:
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
