"""Generation examples from files: a user's own file through a field mapping, and DialogSum.

The example type and the row mapping live in the data layer (`data.examples`,
`data.generation_fields`), where every dataset's rows become examples; they are re-exported
here. Rows that share a source (the DialogSum test split stores its 3 references as 3 rows)
become one example with all their references.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..data.examples import SOURCE_SLOT, GenerationExample, render_prompt, split_template
from ..data.generation_fields import (
    DIALOGSUM_FIELDS,
    GenerationDataError,
    GenerationFields,
    examples_from_rows,
    generation_fields_from_dict,
    group_by_source,
)
from ..data.readers import read_rows
from ..data.roots import resolve_data_root
from ..errors import BlobLoraError, ConfigError

DIALOGSUM_ID = "knkarthick/dialogsum"
DIALOGSUM_SPLITS = ("train", "validation", "test")

__all__ = [
    "DIALOGSUM_FIELDS",
    "DIALOGSUM_ID",
    "DIALOGSUM_SPLITS",
    "SOURCE_SLOT",
    "GenerationDataError",
    "GenerationExample",
    "GenerationFields",
    "dialogsum_file",
    "examples_from_rows",
    "generation_fields_from_dict",
    "group_by_source",
    "load_dialogsum",
    "read_generation_examples",
    "render_prompt",
    "split_template",
]


def read_generation_examples(
    path: str | os.PathLike, mapping: GenerationFields, limit: int | None = None
) -> list[GenerationExample]:
    """Examples of a .jsonl/.json/.csv/.tsv file (read by the project's common reader).

    ``limit`` keeps the first examples (after grouping), enough for a fixed test subset.
    """
    examples = examples_from_rows(read_rows(path), mapping, origin=str(path))
    return examples if limit is None else examples[:limit]


def dialogsum_file(split: str, data_root: str | os.PathLike | None = None) -> Path:
    """The local DialogSum JSONL of ``split`` under the benchmark data root."""
    if split not in DIALOGSUM_SPLITS:
        raise ConfigError(f"DialogSum has no split {split!r}; use one of {DIALOGSUM_SPLITS}")
    root = resolve_data_root(data_root)
    if root.path is None:
        raise BlobLoraError(f"DialogSum needs the benchmark data folder: {root.describe()}")
    path = root.path / DIALOGSUM_ID / f"{split}.jsonl"
    if not path.is_file():
        raise BlobLoraError(f"DialogSum split {split!r} is not at {path}")
    return path


def load_dialogsum(
    split: str, limit: int | None = None, data_root: str | os.PathLike | None = None
) -> list[GenerationExample]:
    """DialogSum examples; on the test split each carries its 3 references."""
    return read_generation_examples(dialogsum_file(split, data_root), DIALOGSUM_FIELDS, limit)
