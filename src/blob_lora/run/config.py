"""The run configuration: one dataclass tree, from YAML plus command-line overrides.

Unknown keys are errors (a typo must never silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import Field

from ..config import AdapterConfig
from ..errors import ConfigError
from ..kl_plan import AUTHORS
from ..kl_plan import KINDS as KL_KINDS
from ..kl_plan import PLANS as KL_PLANS
from ..schema import settings, validate
from ..schema.types import (
    Bool,
    Count,
    Name,
    NonNegativeFloat,
    Positive,
    PositiveFloat,
    Probability,
    Seed,
    Share,
)
from ..schema.validate import check_keys
from .protocol import apply_protocol, section

PRECISIONS = ("fp32", "bf16")
QUANTIZATIONS = ("none", "4bit", "8bit")  # quantization.QUANTIZATIONS (no torch import here)
OPTIM_SCHEMES = ("authors", "elbo")  # optim.SCHEMES (kept here: no torch import to check a config)
GEN_NOISES = ("auto", "weights", "decoding")
GEN_PROMPTS = ("sampled", "shared")
TASKS = ("auto", "choice", "classification", "generate")
HEADS = ("train", "lora", "frozen")
GENERATE_NOT_SHARDED = (
    "sharding=fsdp does not support generation tasks (the processes would stop decoding at "
    "different steps); use sharding=none"
)
MaxLength = Annotated[int, Field(strict=True, ge=8)]
GenSamples = Annotated[int, Field(strict=True, ge=2)]  # N=1 has no disagreement to score


@settings
class RunConfig:
    model: Name = field(default="minilm", metadata={"help": "short name, hub id or local path"})
    task: Literal[TASKS] = field(
        default="auto",
        metadata={
            "help": "auto | choice | classification | generate (auto: generate for a "
            "generation dataset such as dialogsum)"
        },
    )
    dataset: Name = field(default="rte", metadata={"help": "short name or a JSON field mapping"})
    train_split: Name = field(default="train", metadata={"help": "split to train on"})
    eval_split: Name = field(
        default="validation", metadata={"help": "split the results are reported on"}
    )
    eval_datasets: list[Name] = field(default_factory=list, metadata={"help": "extra (OOD) sets"})
    method: Name = field(
        default="blob", metadata={"help": "a registered method: `blob methods` lists them"}
    )
    protocol: Literal["default", "paper"] = field(
        default="default",
        metadata={"help": "default | paper: the authors' code on every point (see protocol.py)"},
    )
    method_options: dict[Name, Any] = field(
        default_factory=dict, metadata={"help": "the method's own settings, e.g. fit_on"}
    )
    output_dir: Name = field(default="runs/run", metadata={"help": "the run folder"})
    seed: Seed = field(default=0, metadata={"help": "init, data order and noise"})
    max_steps: Count = field(default=300, metadata={"help": "0 with init_from: post-hoc only"})
    init_from: Name | None = field(
        default=None,
        metadata={"help": "start from a trained adapter: a run dir, adapter dir or PEFT dir"},
    )
    batch_size: Positive = field(default=32, metadata={"help": "per-process micro-batch"})
    group_by_length: Bool = field(
        default=False,
        metadata={"help": "train on batches of similar length: less padding, faster steps"},
    )
    grad_accum: Positive = field(default=1, metadata={"help": "micro-batches per step"})
    eval_batch_size: Positive = field(default=64, metadata={"help": "examples per eval pass"})
    lr: PositiveFloat = field(default=5e-4, metadata={"help": "AdamW lr of means and B"})
    kl_lr: NonNegativeFloat | None = field(
        default=None,
        metadata={
            "help": "SGD lr of the KL step (kl_plan=authors; default the authors' own: "
            + ", ".join(f"{b.kl_lr:g} {family}" for family, b in AUTHORS.items())
            + ")"
        },
    )
    weight_decay: NonNegativeFloat | None = field(
        default=None, metadata={"help": "AdamW weight decay (default: the method's, else 0)"}
    )
    warmup_ratio: Share = field(default=0.06, metadata={"help": "linear warmup share of max_steps"})
    max_grad_norm: PositiveFloat | None = field(
        default=None, metadata={"help": "clip the NLL gradient norm"}
    )
    adam_eps: PositiveFloat = field(
        default=1e-8, metadata={"help": "AdamW eps (the authors' code: 1e-6)"}
    )
    lr_schedule_per_process: Bool = field(
        default=False,
        metadata={
            "help": "step the LR schedules once per process per optimizer step, as the "
            "authors' Accelerate code does (with P processes the LR ends after max_steps/P)"
        },
    )
    optim_scheme: Literal[OPTIM_SCHEMES] = field(
        default="authors", metadata={"help": "authors | elbo"}
    )
    kl_schedule: Literal[KL_KINDS] | None = field(
        default=None, metadata={"help": "blob|uniform|elbo|none"}
    )
    kl_plan: Literal[KL_PLANS] = field(
        default="budget",
        metadata={
            "help": "budget: cycles and kl_lr chosen so the run gets the authors' KL clock; "
            "authors: their M (from gamma) and kl_lr as given"
        },
    )
    kl_on_means: Bool = field(
        default=True,
        metadata={
            "help": "false: the KL moves only the posterior std, not the means (no weight "
            "decay of M toward the prior mean)"
        },
    )
    kl_clock_scale: PositiveFloat = field(
        default=0.2,
        metadata={
            "help": "kl_plan=budget: the authors' clock times this (0.2: chosen on MRPC and "
            "TREC dev splits, experiments/results/schedule_check.md and sensitivity.md; 1.0 "
            "collapsed the posterior)"
        },
    )
    gamma: PositiveFloat = field(
        default=8.0, metadata={"help": "kl_plan=authors: M = 100 N^(pi/gamma) / batch"}
    )
    kl_cycle: Positive | None = field(
        default=None,
        metadata={"help": "kl_plan=authors: steps per KL cycle (default: the authors' M)"},
    )
    max_length: MaxLength = field(default=256, metadata={"help": "tokens per input"})
    precision: Literal[PRECISIONS] = field(
        default="fp32", metadata={"help": "fp32 | bf16 (autocast; ~2x on AMX CPUs and GPUs)"}
    )
    quantization: Literal[QUANTIZATIONS] = field(
        default="none",
        metadata={
            "help": "none | 4bit (NF4) | 8bit (LLM.int8()): the frozen base quantized by "
            'bitsandbytes (pip install "blob-lora[quantized]"); adapters, noise, KL stay fp32'
        },
    )
    sharding: Literal["none", "fsdp"] = field(
        default="none",
        metadata={
            "help": "none | fsdp: under `accelerate launch`, shard the base and the adapters "
            "over the processes with torch FSDP2 (a model larger than one GPU); only the "
            "adapter is saved"
        },
    )
    train_limit: Positive | None = field(
        default=None, metadata={"help": "train on a seeded subset"}
    )
    eval_limit: Positive | None = field(
        default=None, metadata={"help": "evaluate on a seeded subset"}
    )
    eval_subset_seed: Seed | None = field(
        default=None,
        metadata={
            "help": "seed of the eval_limit subset (None: the run's seed); fix it so every "
            "seed of a table evaluates the same rows"
        },
    )
    calib_fraction: Share = field(
        default=0.0,
        metadata={
            "help": "share of the training rows held out of training (a fixed carve, the "
            "same for every seed and method) for post-hoc calibration: ts, blob-ts"
        },
    )
    eval_every: Count = field(default=0, metadata={"help": "N=0 eval every k steps"})
    save_every: Count = field(default=100, metadata={"help": "checkpoint every k steps"})
    eval_samples: list[Count] | None = field(default=None, metadata={"help": "N per evaluation"})
    anchor_size: Positive = field(
        default=256, metadata={"help": "train examples for post-hoc fits"}
    )
    head: Literal[HEADS] = field(
        default="train", metadata={"help": "seq-cls head: train | lora | frozen"}
    )
    max_target_length: Positive | None = field(
        default=None,
        metadata={"help": "generate: cut training targets to this many tokens (None: never)"},
    )
    max_new_tokens: Positive = field(
        default=64, metadata={"help": "generate: tokens generated per output at most"}
    )
    gen_samples: GenSamples = field(
        default=5,
        metadata={"help": "generate: S sampled outputs per input (the N=S results row)"},
    )
    num_beams: Positive = field(
        default=1, metadata={"help": "generate: beams of the N=0 output (1: greedy)"}
    )
    gen_noise: Literal[GEN_NOISES] = field(
        default="auto",
        metadata={
            "help": "generate: where samples differ: weights (one posterior sample per "
            "output, greedy), decoding (temperature/top-p), auto (weights if Bayesian)"
        },
    )
    gen_prompt: Literal[GEN_PROMPTS] = field(
        default="sampled",
        metadata={
            "help": "generate, weight samples: how each reads the prompt: sampled (with its own "
            "weights, exact) | shared (once at the posterior mean for all S: cheaper, an "
            "approximation; bench/results/generation_route.md)"
        },
    )
    gen_temperature: PositiveFloat = field(
        default=1.0, metadata={"help": "generate: temperature of decoding-noise samples"}
    )
    gen_top_p: Probability = field(
        default=0.9, metadata={"help": "generate: top-p of decoding-noise samples, in (0, 1]"}
    )
    bertscore: Bool = field(
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
        if self.quantization != "none" and importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError(
                f"quantization={self.quantization} needs bitsandbytes, which is not installed: "
                'pip install "blob-lora[quantized]"'
            )
        if self.sharding == "fsdp":
            _check_shardable(self)
        if self.kl_plan == "budget":
            fixed = [k for k in ("kl_lr", "kl_cycle") if getattr(self, k) is not None]
            if fixed:
                raise ConfigError(
                    f"{' and '.join(fixed)} conflict with kl_plan=budget, which chooses them; "
                    "set kl_plan=authors to fix them yourself, or kl_clock_scale to scale the plan"
                )
        if self.max_steps == 0 and not self.init_from:
            raise ConfigError(
                "max_steps=0 trains nothing: set max_steps >= 1, or init_from=<a trained "
                "adapter or run folder> to evaluate (or post-process) one"
            )
        from ..data.specs import parse_spec
        from ..methods import get_method  # here, not at import: methods pull in torch

        get_method(self.method, self.method_options)  # unknown options, bad values
        parse_spec(self.dataset, "dataset")  # every field of a mapping, before any loading
        for i, name in enumerate(self.eval_datasets):
            parse_spec(name, f"eval_datasets[{i}]")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_saved(cls, data: dict[str, Any]) -> RunConfig:
        """A run_config.json: adapter keys it predates take the value the run used."""
        adapter = AdapterConfig.from_saved(dict(data.get("adapter") or {}))
        return cls.from_dict(dict(data) | {"adapter": adapter.to_dict()})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        check_keys(data, "")
        data = apply_protocol(dict(data))
        adapter = data.get("adapter")
        if not isinstance(adapter, AdapterConfig):
            # the run's adapter defaults (r=8, alpha=8 on query/value) under what is given
            base = cls.__dataclass_fields__["adapter"].default_factory().to_dict()
            data["adapter"] = AdapterConfig.from_dict(base | section(adapter, "adapter"))
        if "kl_plan" not in data and any(data.get(k) is not None for k in ("kl_lr", "kl_cycle")):
            # a fixed kl_lr / kl_cycle asks for the plan that honours them (and every run
            # written before kl_plan existed ran it)
            data["kl_plan"] = "authors"
        if isinstance(data.get("dataset"), dict):
            data["dataset"] = _spec_text(data["dataset"])
        if isinstance(data.get("eval_datasets"), list):
            data["eval_datasets"] = [_spec_text(d) for d in data["eval_datasets"]]
        return validate(cls, data)


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
