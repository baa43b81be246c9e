"""The set-up checks and choices of a generation run (task=generate), kept out of run_setup:
which models and methods can generate, the model class, and the default adapter targets."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .errors import ConfigError

# what a dataset of each kind holds, and the fix when the run's task is another one
DATASET_KINDS = {
    "choice": (
        "multiple-choice questions",
        "use a causal LM (e.g. model=gemma-270m) with task=choice",
    ),
    "classification": (
        "texts with labels",
        "use task=classification (an encoder such as model=minilm)",
    ),
    "generate": (
        "source/target texts",
        "use task=generate with a causal LM (e.g. model=gemma-270m) or an encoder-decoder "
        "(e.g. facebook/bart-base)",
    ),
}


def generation_methods() -> list[str]:
    """Methods with a generation path (`Method.generates`): one adapter whose weights carry
    the posterior or the point estimate; the others predict through class logits."""
    from .methods import METHODS

    return [name for name, method in METHODS.items() if method.generates]


def check_generation(cfg: Any, family: str) -> None:
    """A generation run needs a causal LM or an encoder-decoder, and a method that can
    generate; checked before any model or data is loaded."""
    if family == "encoder":
        raise ConfigError(
            f"model {cfg.model!r} is an encoder and cannot generate text; use a causal LM "
            "(e.g. model=gemma-270m) or an encoder-decoder (e.g. facebook/bart-base)"
        )
    if cfg.method not in generation_methods():
        raise ConfigError(
            f"method {cfg.method!r} has no generation path yet; use one of "
            f"{', '.join(generation_methods())} with task=generate"
        )
    from .methods import get_method

    if cfg.gen_noise == "weights" and get_method(cfg.method).adapter_kind == "lora":
        raise ConfigError(
            f"gen_noise=weights needs a posterior to sample, and method {cfg.method!r} has "
            "none; use gen_noise=decoding (or auto)"
        )
    samples = [n for n in cfg.eval_samples or [] if n == 1]
    if samples:
        raise ConfigError(
            "eval_samples=1 cannot measure disagreement: a generation run samples 0 (the "
            "mean) or S >= 2 outputs per input"
        )


def generation_model_kind(model: str) -> str:
    """The model class of a generation run: ``seq2seq`` for an encoder-decoder (BART, T5),
    else ``causal-lm``."""
    from .models import model_family

    return "seq2seq" if model_family(model) == "encoder-decoder" else "causal-lm"


def generation_targets(model: Any, adapter: Any) -> Any:
    """The adapter config with the generation default targets where the configured ones
    match nothing of this model (see `tasks.generation.default_targets`)."""
    from .tasks.generation import default_targets

    return replace(adapter, target_modules=default_targets(model, adapter.target_modules))
