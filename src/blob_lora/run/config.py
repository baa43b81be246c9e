"""The run configuration: one dataclass tree, from YAML plus command-line overrides.

Unknown keys are errors (a typo must never silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from ..config import AdapterConfig
from ..errors import ConfigError
from ..kl_plan import AUTHORS
from ..kl_plan import KINDS as KL_KINDS
from ..kl_plan import PLANS as KL_PLANS
from .protocol import apply_protocol

PRECISIONS = ("fp32", "bf16")
QUANTIZATIONS = ("none", "4bit", "8bit")  # quantization.QUANTIZATIONS (no torch import here)
OPTIM_SCHEMES = ("authors", "elbo")  # optim.SCHEMES (kept here: no torch import to check a config)
GEN_NOISES = ("auto", "weights", "decoding")
CHOICES = {
    "task": ("auto", "choice", "classification", "generate"),
    "gen_noise": GEN_NOISES,
    "optim_scheme": OPTIM_SCHEMES,
    "head": ("train", "lora", "frozen"),
    "kl_schedule": (None, *KL_KINDS),
    "precision": PRECISIONS,
    "quantization": QUANTIZATIONS,
    "sharding": ("none", "fsdp"),
}
GENERATE_NOT_SHARDED = (
    "sharding=fsdp does not support generation tasks (the processes would stop decoding at "
    "different steps); use sharding=none"
)
# (lowest, highest allowed, whether the lowest itself is allowed)
RANGES = {
    "seed": (0, None, True),
    "max_steps": (0, None, True),
    "batch_size": (1, None, True),
    "grad_accum": (1, None, True),
    "eval_batch_size": (1, None, True),
    "lr": (0, None, False),
    "kl_lr": (0, None, True),
    "weight_decay": (0, None, True),
    "warmup_ratio": (0, 1, True),
    "max_grad_norm": (0, None, False),
    "adam_eps": (0, None, False),
    "gamma": (0, None, False),
    "kl_cycle": (1, None, True),
    "max_length": (8, None, True),
    "train_limit": (1, None, True),
    "eval_limit": (1, None, True),
    "eval_every": (0, None, True),
    "save_every": (0, None, True),
    "anchor_size": (1, None, True),
    "eval_subset_seed": (0, None, True),
    "calib_fraction": (0, 1, True),
    "max_target_length": (1, None, True),
    "max_new_tokens": (1, None, True),
    "gen_samples": (2, None, True),
    "num_beams": (1, None, True),
    "gen_temperature": (0, None, False),
    "gen_top_p": (0, None, False),  # and <= 1, checked below
}


@dataclass
class RunConfig:
    model: str = field(default="minilm", metadata={"help": "short name, hub id or local path"})
    task: str = field(
        default="auto",
        metadata={
            "help": "auto | choice | classification | generate (auto: generate for a "
            "generation dataset such as dialogsum)"
        },
    )
    dataset: str = field(default="rte", metadata={"help": "short name or a JSON field mapping"})
    train_split: str = field(default="train", metadata={"help": "split to train on"})
    eval_split: str = field(
        default="validation", metadata={"help": "split the results are reported on"}
    )
    eval_datasets: list[str] = field(default_factory=list, metadata={"help": "extra (OOD) sets"})
    method: str = field(
        default="blob", metadata={"help": "a registered method: `blob methods` lists them"}
    )
    protocol: str = field(
        default="default",
        metadata={"help": "default | paper: the authors' code on every point (see protocol.py)"},
    )
    method_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "the method's own settings, e.g. fit_on"}
    )
    output_dir: str = field(default="runs/run", metadata={"help": "the run folder"})
    seed: int = field(default=0, metadata={"help": "init, data order and noise"})
    max_steps: int = field(default=300, metadata={"help": "0 with init_from: post-hoc only"})
    init_from: str | None = field(
        default=None,
        metadata={"help": "start from a trained adapter: a run dir, adapter dir or PEFT dir"},
    )
    batch_size: int = field(default=32, metadata={"help": "per-process micro-batch"})
    group_by_length: bool = field(
        default=False,
        metadata={"help": "train on batches of similar length: less padding, faster steps"},
    )
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per step"})
    eval_batch_size: int = field(default=64, metadata={"help": "examples per eval pass"})
    lr: float = field(default=5e-4, metadata={"help": "AdamW lr of means and B"})
    kl_lr: float | None = field(
        default=None,
        metadata={
            "help": "SGD lr of the KL step (kl_plan=authors; default the authors' own: "
            + ", ".join(f"{b.kl_lr:g} {family}" for family, b in AUTHORS.items())
            + ")"
        },
    )
    weight_decay: float | None = field(
        default=None, metadata={"help": "AdamW weight decay (default: the method's, else 0)"}
    )
    warmup_ratio: float = field(default=0.06, metadata={"help": "linear warmup share of max_steps"})
    max_grad_norm: float | None = field(
        default=None, metadata={"help": "clip the NLL gradient norm"}
    )
    adam_eps: float = field(default=1e-8, metadata={"help": "AdamW eps (the authors' code: 1e-6)"})
    lr_schedule_per_process: bool = field(
        default=False,
        metadata={
            "help": "step the LR schedules once per process per optimizer step, as the "
            "authors' Accelerate code does (with P processes the LR ends after max_steps/P)"
        },
    )
    optim_scheme: str = field(default="authors", metadata={"help": "authors | elbo"})
    kl_schedule: str | None = field(default=None, metadata={"help": "blob|uniform|elbo|none"})
    kl_plan: str = field(
        default="budget",
        metadata={
            "help": "budget: cycles and kl_lr chosen so the run gets the authors' KL clock; "
            "authors: their M (from gamma) and kl_lr as given"
        },
    )
    kl_on_means: bool = field(
        default=True,
        metadata={
            "help": "false: the KL moves only the posterior std, not the means (no weight "
            "decay of M toward the prior mean)"
        },
    )
    kl_clock_scale: float = field(
        default=0.2,
        metadata={
            "help": "kl_plan=budget: the authors' clock times this (0.2: chosen on MRPC and "
            "TREC dev splits, experiments/results/schedule_check.md and sensitivity.md; 1.0 "
            "collapsed the posterior)"
        },
    )
    gamma: float = field(
        default=8.0, metadata={"help": "kl_plan=authors: M = 100 N^(pi/gamma) / batch"}
    )
    kl_cycle: int | None = field(
        default=None,
        metadata={"help": "kl_plan=authors: steps per KL cycle (default: the authors' M)"},
    )
    max_length: int = field(default=256, metadata={"help": "tokens per input"})
    precision: str = field(
        default="fp32", metadata={"help": "fp32 | bf16 (autocast; ~2x on AMX CPUs and GPUs)"}
    )
    quantization: str = field(
        default="none",
        metadata={
            "help": "none | 4bit (NF4) | 8bit (LLM.int8()): the frozen base quantized by "
            'bitsandbytes (pip install "blob-lora[quantized]"); adapters, noise, KL stay fp32'
        },
    )
    sharding: str = field(
        default="none",
        metadata={
            "help": "none | fsdp: under `accelerate launch`, shard the base and the adapters "
            "over the processes with torch FSDP2 (a model larger than one GPU); only the "
            "adapter is saved"
        },
    )
    train_limit: int | None = field(default=None, metadata={"help": "train on a seeded subset"})
    eval_limit: int | None = field(default=None, metadata={"help": "evaluate on a seeded subset"})
    eval_subset_seed: int | None = field(
        default=None,
        metadata={
            "help": "seed of the eval_limit subset (None: the run's seed); fix it so every "
            "seed of a table evaluates the same rows"
        },
    )
    calib_fraction: float = field(
        default=0.0,
        metadata={
            "help": "share of the training rows held out of training (a fixed carve, the "
            "same for every seed and method) for post-hoc calibration: ts, blob-ts"
        },
    )
    eval_every: int = field(default=0, metadata={"help": "N=0 eval every k steps"})
    save_every: int = field(default=100, metadata={"help": "checkpoint every k steps"})
    eval_samples: list[int] | None = field(default=None, metadata={"help": "N per evaluation"})
    anchor_size: int = field(default=256, metadata={"help": "train examples for post-hoc fits"})
    head: str = field(default="train", metadata={"help": "seq-cls head: train | lora | frozen"})
    max_target_length: int | None = field(
        default=None,
        metadata={"help": "generate: cut training targets to this many tokens (None: never)"},
    )
    max_new_tokens: int = field(
        default=64, metadata={"help": "generate: tokens generated per output at most"}
    )
    gen_samples: int = field(
        default=5,
        metadata={"help": "generate: S sampled outputs per input (the N=S results row)"},
    )
    num_beams: int = field(
        default=1, metadata={"help": "generate: beams of the N=0 output (1: greedy)"}
    )
    gen_noise: str = field(
        default="auto",
        metadata={
            "help": "generate: where samples differ: weights (one posterior sample per "
            "output, greedy), decoding (temperature/top-p), auto (weights if Bayesian)"
        },
    )
    gen_temperature: float = field(
        default=1.0, metadata={"help": "generate: temperature of decoding-noise samples"}
    )
    gen_top_p: float = field(
        default=0.9, metadata={"help": "generate: top-p of decoding-noise samples, in (0, 1]"}
    )
    bertscore: bool = field(
        default=False,
        metadata={
            "help": "generate: also BERTScore F1 on the offline MiniLM (not comparable "
            "with published numbers, which used other models)"
        },
    )
    adapter: AdapterConfig = field(
        default_factory=lambda: AdapterConfig(r=8, alpha=8, target_modules=["query", "value"])
    )

    def __post_init__(self) -> None:
        _check_types(self)
        for key, allowed in CHOICES.items():
            value = getattr(self, key)
            if value not in allowed:
                names = ", ".join(str(a) for a in allowed if a is not None)
                raise ConfigError(f"{key} {value!r} is unknown; use one of {names}")
        for key, (low, high, closed) in RANGES.items():
            value = getattr(self, key)
            if value is None:
                continue
            if value < low or (value == low and not closed) or (high is not None and value >= high):
                bound = f">= {low}" if closed else f"> {low}"
                bound += f" and < {high}" if high is not None else ""
                raise ConfigError(f"{key} must be {bound}, got {value!r}")
        if self.quantization != "none" and importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError(
                f"quantization={self.quantization} needs bitsandbytes, which is not installed: "
                'pip install "blob-lora[quantized]"'
            )
        if self.sharding == "fsdp":
            _check_shardable(self)
        if self.gen_top_p > 1:
            raise ConfigError(f"gen_top_p must be in (0, 1], got {self.gen_top_p!r}")
        if any(n < 0 for n in self.eval_samples or []):
            raise ConfigError(f"eval_samples must be >= 0 (0: the mean), got {self.eval_samples}")
        if self.kl_plan not in KL_PLANS:
            raise ConfigError(
                f"kl_plan {self.kl_plan!r} is unknown; use one of {', '.join(KL_PLANS)}"
            )
        if self.kl_plan == "budget":
            fixed = [k for k in ("kl_lr", "kl_cycle") if getattr(self, k) is not None]
            if fixed:
                raise ConfigError(
                    f"{' and '.join(fixed)} conflict with kl_plan=budget, which chooses them; "
                    "set kl_plan=authors to fix them yourself, or kl_clock_scale to scale the plan"
                )
        if not self.kl_clock_scale > 0:
            raise ConfigError(f"kl_clock_scale must be > 0, got {self.kl_clock_scale!r}")
        if self.max_steps == 0 and not self.init_from:
            raise ConfigError(
                "max_steps=0 trains nothing: set max_steps >= 1, or init_from=<a trained "
                "adapter or run folder> to evaluate (or post-process) one"
            )
        from ..methods import get_method  # here, not at import: methods pull in torch

        get_method(self.method, self.method_options)  # unknown options, bad values

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_saved(cls, data: dict[str, Any]) -> RunConfig:
        """A run_config.json: adapter keys it predates take the value the run used."""
        adapter = AdapterConfig.from_saved(dict(data.get("adapter") or {}))
        return cls.from_dict(dict(data) | {"adapter": adapter.to_dict()})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = apply_protocol(dict(data))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; known keys: {sorted(known)}")
        adapter = data.pop("adapter", None)
        if "kl_plan" not in data and any(data.get(k) is not None for k in ("kl_lr", "kl_cycle")):
            # a fixed kl_lr / kl_cycle asks for the plan that honours them (and every run
            # written before kl_plan existed ran it)
            data["kl_plan"] = "authors"
        if isinstance(data.get("dataset"), dict):
            data["dataset"] = _spec_text(data["dataset"])
        if isinstance(data.get("eval_datasets"), list):
            data["eval_datasets"] = [_spec_text(d) for d in data["eval_datasets"]]
        run = cls(**data)
        if isinstance(adapter, AdapterConfig):
            run.adapter = adapter
        elif adapter is not None:
            base = run.adapter.to_dict()
            unknown = sorted(set(adapter) - set(base))
            if unknown:
                raise ConfigError(
                    f"unknown config keys {['adapter.' + k for k in unknown]}; "
                    f"known adapter keys: {sorted(base)}"
                )
            run.adapter = AdapterConfig.from_dict(base | adapter)
        return run


def _type_name(tp: Any) -> str:
    if typing.get_args(tp):
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", str(tp))


def _matches(value: Any, tp: Any) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin is list:
        return isinstance(value, list) and all(_matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _check_types(cfg: RunConfig) -> None:
    """Every key of the right type, named with the type it needs (ints stay ints: a
    float where an int goes is an error, an int where a float goes is taken)."""
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(cfg):
        if f.name == "adapter":
            continue
        value, tp = getattr(cfg, f.name), hints[f.name]
        if not _matches(value, tp):
            raise ConfigError(
                f"{f.name} must be {_type_name(tp)}, got {value!r} ({type(value).__name__})"
            )
        if tp is float or float in typing.get_args(tp):
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(cfg, f.name, float(value))


def _spec_text(spec: Any) -> Any:
    """A dataset given as a YAML/JSON mapping is kept as its JSON text (the form
    `load_examples` and run_config.json share), so a resumed run compares equal."""
    return json.dumps(spec, sort_keys=True) if isinstance(spec, dict) else spec


def _check_shardable(cfg: RunConfig) -> None:
    """sharding=fsdp covers training and classification / multiple-choice evaluation."""
    from ..methods import get_method

    refusal = get_method(cfg.method).sharding_refusal
    if refusal:
        raise ConfigError(
            f"sharding=fsdp does not support method {cfg.method!r} ({refusal}); "
            "use sharding=none (DDP under accelerate launch) for it"
        )
    if cfg.task == "generate":
        raise ConfigError(GENERATE_NOT_SHARDED)
    if cfg.quantization != "none":
        raise ConfigError(
            "sharding=fsdp with a quantized base is not supported (bitsandbytes' packed "
            "weights cannot be sharded); use one of them"
        )
