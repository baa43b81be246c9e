"""Zero-shot prompts for causal-LM multiple choice.

Deliberately plain and correct (the paper's templates swap choice labels and texts and
map BoolQ's True to "False"): each choice is listed under its own letter, the gold answer
is the letter at the label's position, and every prompt ends with the cue "Answer:" so the
next token is the answer.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from ..data.examples import ChoiceExample
from ..errors import BlobLoraError

ANSWER_CUE = "Answer:"
LETTERS = string.ascii_uppercase


@dataclass(frozen=True)
class Prompt:
    """The prompt text and the character span of its context (truncated first), if any."""

    text: str
    context_span: tuple[int, int] | None = None


def answer_strings(example: ChoiceExample) -> list[str]:
    """What the model answers with: letters A, B, ... or the choice words (yes/no)."""
    if example.answer_format == "word":
        return list(example.choices)
    if len(example.choices) > len(LETTERS):
        raise BlobLoraError(f"example {example.id!r} has more than {len(LETTERS)} choices")
    return list(LETTERS[: len(example.choices)])


def format_prompt(example: ChoiceExample) -> Prompt:
    """``[Passage: ...\\n]Question: ...\\n[A. ...\\nB. ...\\n]Answer:``."""
    head, span = "", None
    if example.context:
        head = "Passage: "
        span = (len(head), len(head) + len(example.context))
        head += example.context + "\n"
    lines = [f"Question: {example.question}"]
    if example.answer_format == "letter":
        lines += [
            f"{letter}. {choice}"
            for letter, choice in zip(answer_strings(example), example.choices, strict=True)
        ]
    lines.append(ANSWER_CUE)
    return Prompt(head + "\n".join(lines), span)
