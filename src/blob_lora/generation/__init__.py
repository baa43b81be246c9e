"""Text generation (summarization): examples, encoding, decoding under the posterior, and
metrics. Building blocks a runner composes; none of them reads a run config.

Names load on first use (PEP 562): `blob --help` builds the generate flags from this
package without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "DIALOGSUM_FIELDS": "data",
    "DecodeSettings": "predict",
    "Encoded": "encoding",
    "EncodingConfig": "encoding",
    "GenerationDataError": "data",
    "GenerationExample": "data",
    "GenerationFields": "data",
    "IGNORE_INDEX": "encoding",
    "Outputs": "predict",
    "aurc": "metrics",
    "bert_scorer": "metrics",
    "bertscore_f1": "metrics",
    "collate": "encoding",
    "corpus_rouge": "metrics",
    "decoding_noise_outputs": "decode",
    "encode_examples": "encoding",
    "encode_pair": "encoding",
    "examples_from_rows": "data",
    "generate_ids": "decode",
    "generate_outputs": "predict",
    "generation_fields_from_dict": "data",
    "load_dialogsum": "data",
    "mean_output": "decode",
    "pairwise_disagreement": "metrics",
    "prompt_batch": "encoding",
    "read_generation_examples": "data",
    "risk_coverage": "metrics",
    "rouge_f1": "metrics",
    "sample_outputs": "decode",
    "sample_rouge": "metrics",
    "sample_statistics": "metrics",
    "uncertainty_auroc": "metrics",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)


__all__ = [
    "DIALOGSUM_FIELDS",
    "DecodeSettings",
    "Outputs",
    "IGNORE_INDEX",
    "Encoded",
    "EncodingConfig",
    "GenerationDataError",
    "GenerationExample",
    "GenerationFields",
    "aurc",
    "bert_scorer",
    "bertscore_f1",
    "collate",
    "corpus_rouge",
    "decoding_noise_outputs",
    "encode_examples",
    "encode_pair",
    "examples_from_rows",
    "generate_ids",
    "generate_outputs",
    "generation_fields_from_dict",
    "load_dialogsum",
    "mean_output",
    "pairwise_disagreement",
    "prompt_batch",
    "read_generation_examples",
    "risk_coverage",
    "rouge_f1",
    "sample_outputs",
    "sample_rouge",
    "sample_statistics",
    "uncertainty_auroc",
]
