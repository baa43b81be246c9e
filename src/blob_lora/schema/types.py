"""Every setting's type, range and finiteness, named once.

Settings are dataclasses whose field types come from here; pydantic checks them on
construction (and on assignment), so a range written here is the only range there is.
Scalars are strict: ``true`` is no integer and ``"8"`` no number, while an integer where a
float goes is taken. No float anywhere may be NaN or infinite.
"""

from __future__ import annotations

import string
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, Strict

# what every settings dataclass is validated with
SETTINGS = ConfigDict(
    extra="forbid", allow_inf_nan=False, validate_assignment=True, revalidate_instances="never"
)

# seeds feed `seed * 1000003 + k` and numpy's 32-bit RNG: below 2**32 both stay in range
SEED_LIMIT = 2**32


def _no_lone_surrogates(text: str) -> str:
    """Text that cannot be written as UTF-8 (a lone surrogate such as \\ud83d) is refused
    where it enters, not in a tokenizer or a file write later."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            "text holds a lone surrogate (not valid Unicode); fix its encoding"
        ) from None
    return text


def _template(text: str) -> str:
    """A field name, or a template over the row's fields (``"Q: {question}"``): its braces
    must parse now, not at the first row."""
    if "{" in text or "}" in text:
        try:
            list(string.Formatter().parse(text))
        except ValueError as err:
            raise ValueError(
                f"template {text!r} does not parse ({err}); close every '{{'"
            ) from None
    return text


def _plain_name(text: str) -> str:
    if text in (".", "..") or "/" in text or "\\" in text:
        raise ValueError("must be a plain name, not a path ('.', '..', '/' or '\\')")
    return text


Int = Annotated[int, Strict()]
Count = Annotated[int, Strict(), Field(ge=0)]
Positive = Annotated[int, Strict(), Field(ge=1)]
Seed = Annotated[int, Strict(), Field(ge=0, lt=SEED_LIMIT)]
_FINITE = Field(strict=True, allow_inf_nan=False)
Float = Annotated[float, _FINITE]
NonNegativeFloat = Annotated[float, _FINITE, Field(ge=0)]
PositiveFloat = Annotated[float, _FINITE, Field(gt=0)]
Fraction = Annotated[float, _FINITE, Field(gt=0, lt=1)]  # a share strictly between 0 and 1
Share = Annotated[float, _FINITE, Field(ge=0, lt=1)]  # 0 allowed: none
Probability = Annotated[float, _FINITE, Field(gt=0, le=1)]
Bool = Annotated[bool, Strict()]
Text = Annotated[str, Strict(), AfterValidator(_no_lone_surrogates)]
Name = Annotated[str, Strict(), Field(min_length=1), AfterValidator(_no_lone_surrogates)]
FieldRef = Annotated[
    str,
    Strict(),
    Field(min_length=1),
    AfterValidator(_no_lone_surrogates),
    AfterValidator(_template),
]
PlainName = Annotated[
    str,
    Strict(),
    Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$"),
    AfterValidator(_plain_name),
]
