"""The flags of `blob generate`, defined once: `add_flags` builds the parser from these
fields and `read_flags` checks what was given (one-line errors naming the flag)."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, Strict

from ..run.config import GEN_PROMPTS
from ..schema import settings
from ..schema.types import Bool, Positive, Seed, Text


def _not_one(value: int) -> int:
    if value == 1:
        raise ValueError("1 sample cannot measure disagreement; use 0 (the N=0 output only) or 2+")
    return value


# S sampled outputs per input: 0 (the N=0 output only) or 2 and more (disagreement needs two)
Samples = Annotated[int, Strict(), Field(ge=0), AfterValidator(_not_one)]


@settings
class GenerateFlags:
    run_dir: Text = field(
        metadata={
            "positional": True,
            "help": "a directory written by `blob train` with task=generate",
        }
    )
    input: Text | None = field(
        default=None,
        metadata={
            "help": "file of inputs (default: stdin), UTF-8: JSON lines when it ends in .jsonl "
            "or its first line is a JSON object, else plain text"
        },
    )
    samples: Samples | None = field(
        default=None,
        metadata={
            "help": "S sampled outputs per input (default: the run's gen_samples; 0: the "
            "N=0 output only; 1 is refused: one sample has no disagreement)"
        },
    )
    seed: Seed | None = field(
        default=None, metadata={"help": "seed of the samples (default: the run's)"}
    )
    format: Literal["jsonl", "text"] = field(default="jsonl", metadata={"help": "output format"})
    max_new_tokens: Positive | None = field(
        default=None,
        metadata={
            "help": "longest output in tokens (default: the run's max_new_tokens); at most "
            "the model's positions"
        },
    )
    prompt: Literal[GEN_PROMPTS] | None = field(
        default=None,
        metadata={
            "help": "how weight samples read the prompt (default: the run's gen_prompt): "
            "sampled (each with its own weights, exact) | shared (once at the posterior mean: "
            "cheaper, an approximation)"
        },
    )
    truncate: Bool = field(
        default=False,
        metadata={"help": "cut the end of an over-long input instead of refusing it"},
    )
    quiet: Bool = field(default=False, metadata={"help": "no progress bar"})
