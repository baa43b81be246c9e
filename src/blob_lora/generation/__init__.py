"""Text generation (summarization): examples, encoding, decoding under the posterior, and
metrics. Building blocks a runner composes; none of them reads a run config."""

from .data import (
    DIALOGSUM_FIELDS,
    GenerationDataError,
    GenerationExample,
    GenerationFields,
    examples_from_rows,
    generation_fields_from_dict,
    load_dialogsum,
    read_generation_examples,
)
from .decode import decoding_noise_outputs, generate_ids, mean_output, sample_outputs
from .encoding import (
    IGNORE_INDEX,
    Encoded,
    EncodingConfig,
    collate,
    encode_examples,
    encode_pair,
    prompt_batch,
)
from .metrics import (
    aurc,
    bert_scorer,
    bertscore_f1,
    corpus_rouge,
    pairwise_disagreement,
    risk_coverage,
    rouge_f1,
    sample_rouge,
    sample_statistics,
    uncertainty_auroc,
)
from .predict import DecodeSettings, Outputs, generate_outputs

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
