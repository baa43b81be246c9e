"""Outputs for many inputs: the N=0 output, S sampled outputs and the per-input disagreement,
in batches, with a progress bar over inputs.

Samples differ either by the weights (``sampler="weights"``: one posterior sample per output,
greedy decoding, `decode.sample_outputs`) or by the decoding (``"decoding"``: temperature /
top-p sampling with the weights fixed at the posterior mean, `decode.decoding_noise_outputs`,
the LoRA baseline). Inputs are batched in order of prompt length (less padding), and batch
k is seeded with ``batch_seed(seed, k)``: the same seed, inputs and settings give the same
outputs, also when processes share the batches (`shards`). Nothing here reads a run config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.batching import batch_seed, global_batches
from ..data.examples import GenerationExample
from ..errors import ConfigError
from ..run.config import GEN_PROMPTS
from ..schema import settings
from ..schema.types import Positive, PositiveFloat, Probability
from .decode import decoding_noise_outputs, mean_output, sample_outputs
from .metrics import pairwise_disagreement, rouge_scorer

SAMPLERS = ("weights", "decoding")


@settings(frozen=True)
class DecodeSettings:
    """How outputs are decoded. ``batch_size``: sequences per ``generate`` call (inputs per
    call = batch_size // S, at least 1)."""

    max_new_tokens: Positive = 64
    num_beams: Positive = 1
    sampler: Literal[SAMPLERS] = "weights"
    prompt: Literal[GEN_PROMPTS] = "sampled"  # how weight samples read the prompt
    temperature: PositiveFloat = 1.0
    top_p: Probability = 1.0
    batch_size: Positive = 16


@dataclass
class Outputs:
    """Per input, in the order given: the N=0 output, the S samples, their disagreement
    (1 - mean pairwise ROUGE-L F1; None with fewer than 2 samples)."""

    mean: list[str] | None
    samples: list[list[str]] | None
    disagreement: list[float] | None


def plan_batches(
    examples: Sequence[GenerationExample], n_samples: int, settings: DecodeSettings
) -> list[list[int]]:
    """The batches of all inputs (``batch_size // S`` inputs a call, shortest first)."""
    per_call = max(1, settings.batch_size // max(n_samples, 1))
    return global_batches([len(e.prompt) for e in examples], per_call)


def generate_outputs(
    model: nn.Module,
    tokenizer,
    prompts: Callable[[Sequence[GenerationExample]], Mapping[str, torch.Tensor]],
    examples: Sequence[GenerationExample],
    n_samples: int,
    seed: int,
    settings: DecodeSettings,
    *,
    with_mean: bool = True,
    progress: bool = True,
    desc: str = "generate",
    batches: Sequence[tuple[int, list[int]]] | None = None,
) -> Outputs:
    """The N=0 output (``with_mean``) and ``n_samples`` samples of every example.

    ``prompts(examples)`` builds a prompt batch (`GenerationTask.prompts`); the model is a
    BlobModel (weight sampling needs Bayesian adapters) or a plain model (decoding noise).
    ``batches``: (k, indices) of the `plan_batches` batches to run (a process's share);
    inputs outside them get None. Default: all of them.
    """
    if n_samples < 0 or n_samples == 1:
        raise ConfigError(
            f"samples per input must be 0 (the N=0 output only) or >= 2, got {n_samples}"
        )
    if not examples:
        raise ConfigError("no inputs to generate from")
    if batches is None:
        batches = list(enumerate(plan_batches(examples, n_samples, settings)))
    mean: list[str | None] = [None] * len(examples)
    samples: list[list[str] | None] = [None] * len(examples)
    scorer = rouge_scorer(["rougeL"]) if n_samples >= 2 else None
    bar = tqdm(
        total=sum(len(idx) for _, idx in batches), desc=desc, unit="input", disable=not progress,
        dynamic_ncols=True, leave=False,
    )  # fmt: skip
    try:
        for k, idx in batches:
            batch = prompts([examples[i] for i in idx])
            if with_mean:
                texts = mean_output(
                    model, tokenizer, batch, settings.max_new_tokens, num_beams=settings.num_beams
                )
                for i, text in zip(idx, texts, strict=True):
                    mean[i] = text
            if n_samples:
                for i, outs in zip(idx, _samples(model, tokenizer, batch, n_samples,
                                                  batch_seed(seed, k), settings), strict=True):  # fmt: skip
                    samples[i] = outs
            bar.update(len(idx))
    finally:
        bar.close()
    disagreement = (
        [None if s is None else pairwise_disagreement(s, scorer) for s in samples]
        if scorer is not None
        else None
    )
    return Outputs(
        mean if with_mean else None,  # type: ignore[arg-type]
        samples if n_samples else None,  # type: ignore[arg-type]
        disagreement,
    )


def _samples(
    model: nn.Module, tokenizer, batch, n_samples: int, seed: int, settings: DecodeSettings
) -> list[list[str]]:
    if settings.sampler == "weights":
        return sample_outputs(
            model, tokenizer, batch, n_samples, seed, settings.max_new_tokens,
            shared_prompt=settings.prompt == "shared",
        )  # fmt: skip
    return decoding_noise_outputs(
        model,
        tokenizer,
        batch,
        n_samples,
        seed,
        settings.max_new_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
    )
