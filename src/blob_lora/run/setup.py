"""A run's set-up: model, task, method and data built from the config, checked first
(`checks`); the run folder itself is `prepare`'s."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch

from ..adapter_model import BlobModel
from ..config import AdapterConfig
from ..data.specs import DEV_SEED
from ..errors import ConfigError
from ..methods import get_method
from ..models.quantization import bnb_config
from .checks import (
    check_compatible,
    check_label_set,
    check_method_settings,
    head_adapter_config,
    resolve_task_kind,
)
from .config import RunConfig


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
    from ..data import load_examples
    from ..generation.checks import generation_model_kind, generation_targets
    from ..models import load_model
    from ..tasks import build_task
    from ..tasks.generation import reference_pairs

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
        check_label_set(cfg.dataset, labelled)
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
