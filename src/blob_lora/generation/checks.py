"""The set-up checks and choices of a generation run (task=generate), kept out of run/setup:
which models and methods can generate, the model class, and the default adapter targets."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import ConfigError

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
    from ..methods import METHODS

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
    from ..methods import get_method

    generation_sampler(cfg, bayesian=get_method(cfg.method).adapter_kind != "lora")
    generation_samples(cfg)


def generation_samples(cfg: Any, samples: list[int] | None = None) -> list[int]:
    """The N a generation evaluation draws: those asked for, else the run's eval_samples,
    else 0 and gen_samples. N=1 is refused (checked when the run is set up, and again for
    the N `blob eval` asks for)."""
    chosen = samples if samples is not None else cfg.eval_samples
    chosen = list(chosen) if chosen is not None else [0, cfg.gen_samples]
    if 1 in chosen:
        where = "eval_samples=1" if samples is None else "N=1"
        raise ConfigError(
            f"{where} cannot measure disagreement: a generation run samples 0 (the N=0 "
            "output) or S >= 2 outputs per input"
        )
    return chosen


def generation_sampler(cfg: Any, bayesian: bool) -> str:
    """Where sampled outputs differ: `weights` (one posterior sample per output) or
    `decoding` (temperature / top-p at the mean weights); see gen_noise."""
    noise = cfg.gen_noise
    if noise == "weights" and not bayesian:
        raise ConfigError(
            f"gen_noise=weights needs a posterior to sample, and method {cfg.method!r} has "
            "none; use gen_noise=decoding (or auto)"
        )
    return "weights" if noise == "weights" or (noise == "auto" and bayesian) else "decoding"


def generation_model_kind(model: str) -> str:
    """The model class of a generation run: ``seq2seq`` for an encoder-decoder (BART, T5),
    else ``causal-lm``."""
    from ..models import model_family

    return "seq2seq" if model_family(model) == "encoder-decoder" else "causal-lm"


def generation_targets(model: Any, adapter: Any) -> Any:
    """The adapter config with the generation default targets where the configured ones
    match nothing of this model (see `tasks.generation.default_targets`)."""
    from ..tasks.generation import default_targets

    return replace(adapter, target_modules=default_targets(model, adapter.target_modules))


def model_positions(config: Any) -> int | None:
    """How many positions the model's (text) config gives it (`max_position_embeddings`,
    GPT-2's `n_positions`), or None where it has no fixed number (T5's relative positions)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(text, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_positions(
    config: Any,
    prompts: list[tuple[int, str]],
    max_new_tokens: int,
    encoder_decoder: bool,
    flag: str | None = None,
) -> None:
    """The outputs must fit the model's positions, checked before generating (a model with
    learned positions such as BART fails with an IndexError past its last one; one with
    rotary positions runs on, past what it was trained on).

    An encoder-decoder places each prompt in the encoder and max_new_tokens in the decoder;
    a decoder-only model places the prompt and then the new tokens in one sequence, so the
    longest prompt (`prompts`: (length, which input)) plus max_new_tokens must fit. `flag`:
    the flag that set max_new_tokens (None: the run's own setting)."""
    positions = model_positions(config)
    if positions is None or not prompts:
        return
    given = f"{flag} {max_new_tokens}" if flag else f"max_new_tokens {max_new_tokens} (the run's)"
    fix = flag or "--max-new-tokens"
    longest, which = max(prompts, key=lambda p: p[0])
    if encoder_decoder:
        if max_new_tokens > positions:
            raise ConfigError(
                f"{given} does not fit the model: its decoder has {positions} positions "
                f"(max_position_embeddings); pass {fix} {positions} or fewer"
            )
        if longest > positions:
            raise ConfigError(
                f"{which} does not fit the model: its prompt is {longest} tokens and the "
                f"encoder has {positions} positions (max_position_embeddings); shorten it"
            )
        return
    if longest + max_new_tokens > positions:
        room = positions - longest
        hint = "shorten the input"
        if room >= 1:
            hint = f"pass {fix} {room} or fewer, or {hint}"
        raise ConfigError(
            f"{given} does not fit the model: {which} has a {longest}-token prompt, and "
            f"prompt plus new tokens need {longest + max_new_tokens} of the model's {positions} "
            f"positions (max_position_embeddings); {hint}"
        )
