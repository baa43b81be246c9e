"""What a run's settings must satisfy before any model or data is loaded (and, for the
training data, before any step is taken): dataset, task and model agree; a method's fixed
settings; the label set; max_length."""

from __future__ import annotations

import json
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..generation.checks import DATASET_KINDS, check_generation, model_positions
from .config import GENERATE_NOT_SHARDED, RunConfig
from .files import dataset_label


def check_label_set(dataset: str, splits: dict[str, list]) -> None:
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
    from ..data.specs import parse_spec
    from ..models import model_family

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
    from ..data.specs import parse_spec
    from ..models import model_family

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


def check_lengths_fit_model(cfg: RunConfig, config: Any, kind: str) -> None:
    """max_length (and, for generation, the new tokens) within the model's positions,
    before a step is taken: past them a model fails at its first long input."""
    limit = model_positions(config)
    if limit is None:
        return
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    if cfg.max_length > limit:
        raise ConfigError(
            f"max_length={cfg.max_length} is more than model {cfg.model!r} has positions "
            f"({limit}); set max_length <= {limit}"
        )
    if kind != "generate":
        return
    room = limit if encoder_decoder else limit - cfg.max_length
    if cfg.max_new_tokens > room:
        where = "its decoder" if encoder_decoder else f"after a {cfg.max_length}-token prompt"
        raise ConfigError(
            f"max_new_tokens={cfg.max_new_tokens} does not fit model {cfg.model!r}: {room} "
            f"positions are left {where} ({limit} in all); set max_new_tokens <= {room}"
            + ("" if encoder_decoder else " or lower max_length")
        )


def check_max_length(
    task: Any, examples: list, max_length: int, sample: int = 32, limit: int | None = None
) -> str:
    """Refuse a max_length that cuts every example of a sample of the training set (the
    run would train on stumps at full cost), unless it is the model's own limit; a warning
    when it cuts most of them."""
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
    if all(f > c for f, c in zip(full, cut, strict=True)) and max_length != limit:
        if limit is not None and min(full) > limit:
            advice = f"raise max_length to {limit}, the model's limit (every example is cut there)"
        else:
            advice = f"raise max_length to at least {min(full)} (the longest has {max(full)})"
        raise ConfigError(
            f"max_length={max_length} cuts every one of the first {len(full)} training "
            f"examples (the shortest has {min(full)} tokens); {advice}"
        )
    n_cut = sum(f > c for f, c in zip(full, cut, strict=True))
    if 2 * n_cut > len(full):
        return (
            f"max_length={max_length} cuts {n_cut} of the first {len(full)} training examples "
            f"(the longest has {max(full)} tokens); raise max_length if their ends matter"
        )
    return ""
