"""Loading a quantized base model through bitsandbytes (QLoRA style): the frozen base in 4 or 8 bits,
the adapters, their noise and the KL in full precision.

bitsandbytes is an optional dependency (``pip install "blob-lora[quantized]"``); nothing
here imports it until a quantized model is asked for, and a model that holds no quantized
layer never needs it. Recent bitsandbytes runs both 4-bit (``Linear4bit``, NF4) and 8-bit
(``Linear8bitLt``, LLM.int8()) layers on CPU as well as on CUDA.

    model, tok = load_model("gemma-270m", "causal-lm", quantization="4bit")
    # or any transformers BitsAndBytesConfig:
    model, tok = load_model(path, "causal-lm", quantization=BitsAndBytesConfig(load_in_8bit=True))
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from ..errors import ConfigError
from ..layers.quantized import require_bitsandbytes

QUANTIZATIONS = ("none", "4bit", "8bit")  # run.config keeps its own copy (no torch import)


def bnb_config(quantization: Any, compute_dtype: torch.dtype = torch.float32) -> Any:
    """A transformers ``BitsAndBytesConfig`` for ``"4bit"`` / ``"8bit"`` (None for
    ``"none"``/None); a config object given is returned as it is.

    4bit is QLoRA's choice: NF4 with double quantization, matmuls in ``compute_dtype`` (bf16
    under ``precision=bf16``, else fp32). 8bit is LLM.int8() with its default outlier
    threshold (6.0). Both leave the output layer (and tied embeddings) unquantized, as
    transformers does by default."""
    if quantization is None or quantization == "none":
        return None
    if not isinstance(quantization, str):
        if type(quantization).__name__ == "BitsAndBytesConfig":
            require_bitsandbytes()
        return quantization
    if quantization not in QUANTIZATIONS:
        raise ConfigError(
            f"quantization {quantization!r} is unknown; use one of {', '.join(QUANTIZATIONS)}"
        )
    require_bitsandbytes()
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def head_unquantized(config: Any, heads: tuple[str, ...] = ("classifier", "score")) -> Any:
    """A copy of ``config`` that leaves a classifier head in full precision (it is trained
    in full or carries adapters over its fresh init). transformers' default skips only the
    output embeddings and the module of the model's last parameter, which for BERT-style
    heads is ``classifier.bias``: the head itself would be quantized. A config that names
    its own ``llm_int8_skip_modules`` is returned as it is."""
    if config is None or getattr(config, "llm_int8_skip_modules", None) is not None:
        return config
    config = copy.deepcopy(config)
    config.llm_int8_skip_modules = list(heads)
    return config


def quantized_device_map() -> dict[str, Any]:
    """Where a quantized model is loaded: this process's device (each DDP process its own
    GPU; CPU without one). bitsandbytes quantizes while loading, so a quantized model is
    never moved afterwards."""
    from accelerate import PartialState

    return {"": PartialState().device}
