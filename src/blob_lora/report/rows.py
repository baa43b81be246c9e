"""What a results row must hold before a table reads it: each refusal is one line naming the
file, the row (or JSONL line) and the field.

A row names its dataset, method and seed (text, text, a whole number); its metrics are
numbers. A generation row may hold null for a metric it could not compute (BERTScore when
it is off, the uncertainty AUROC when every output scores alike): the table shows "–". A
classification row never writes null, so a null there is a damaged file, not a blank.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import BlobLoraError
from .keys import is_generation, metric_keys

REQUIRED = ("dataset", "method", "seed")
TEXT_KEYS = ("dataset", "method", "sampler", "task")


def _number(value: Any) -> bool:
    """A JSON number a table can average (not a bool, not an int too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_row(row: Any, where: str, asked: Iterable[str] = ()) -> dict[str, Any]:
    """`row` as a results row, or a one-line BlobLoraError naming `where` and the field."""
    if not isinstance(row, dict):
        raise BlobLoraError(
            f"{where} is {type(row).__name__}, not a results row (a JSON object with "
            "dataset, method, seed and metrics)"
        )
    for key in REQUIRED:
        if key not in row:
            raise BlobLoraError(
                f"{where} has no {key!r}; every results row needs {', '.join(REQUIRED)} "
                "(rows written by `blob train` and `blob eval` have them)"
            )
        if row[key] is None:
            raise BlobLoraError(f"{where} holds null for {key!r}; give it a value")
    for key in TEXT_KEYS:
        if key in row and not (isinstance(row[key], str) and row[key].strip()):
            raise BlobLoraError(
                f"{where}: {key!r} is {_shown(row[key])} ({type(row[key]).__name__}); "
                "it must be non-empty text"
            )
        if key in row and _has_lone_surrogate(row[key]):
            raise BlobLoraError(
                f"{where}: {key!r} holds a lone surrogate (not valid Unicode): "
                f"{_shown(row[key])}; fix the file's text"
            )
    for key in ("seed", "n_samples"):
        value = row.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BlobLoraError(
                f"{where}: {key!r} is {_shown(value)} ({type(value).__name__}); it must be a "
                "whole number >= 0"
            )
    generation = is_generation(row)
    for key in sorted(metric_keys(generation, asked)):
        if key not in row:
            continue
        value = row[key]
        if value is None:
            if generation:
                continue  # not computed for this row: the table shows "–"
            raise BlobLoraError(
                f"{where} holds null for {key!r}; a metric is a number: rerun the "
                "evaluation, or drop the row"
            )
        if not _number(value):
            raise BlobLoraError(
                f"{where}: {key!r} is {_shown(value)} ({type(value).__name__}), not a number"
            )
    return row
