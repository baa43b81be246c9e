"""Quantized base models through bitsandbytes (QLoRA style): the frozen base in 4 or 8 bits,
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
import importlib.util
import sys
from typing import Any

import torch
from torch import nn

from .bnb_logs import quiet_bitsandbytes
from .errors import ConfigError

QUANTIZATIONS = ("none", "4bit", "8bit")  # run_config keeps its own copy (no torch import)
INSTALL_HINT = 'pip install "blob-lora[quantized]" (bitsandbytes)'


def require_bitsandbytes() -> Any:
    """The bitsandbytes module, or a ConfigError that says how to install it."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            f"a quantized base needs bitsandbytes, which is not installed: {INSTALL_HINT}"
        )
    import bitsandbytes

    quiet_bitsandbytes()
    return bitsandbytes


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


def is_quantized_linear(module: nn.Module) -> bool:
    """A bitsandbytes 4-bit or 8-bit linear layer (False whenever bitsandbytes was never
    imported: then no such layer can exist)."""
    bnb = sys.modules.get("bitsandbytes")
    if bnb is None:
        return False
    return isinstance(module, bnb.nn.Linear4bit | bnb.nn.Linear8bitLt)


def quantization_of(model: nn.Module) -> str | None:
    """``"4bit"``, ``"8bit"`` or None: the kind of quantized linear layers ``model`` holds."""
    bnb = sys.modules.get("bitsandbytes")
    if bnb is None:
        return None
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            return "4bit"
        if isinstance(module, bnb.nn.Linear8bitLt):
            return "8bit"
    return None


def keep_trainable(model: nn.Module) -> int:
    """Keep every 4-bit layer of ``model`` on bitsandbytes' differentiable path; returns how
    many 4-bit layers it holds.

    On CPUs with AVX512-BF16, bitsandbytes 0.50 repacks a ``Linear4bit`` weight in place on
    its first eval-mode call without gradients (into an inference-only layout, absmax in
    bf16). From then on its matmul has no autograd kernel: training after any evaluation
    gets no gradient through the base, so every adapter below it stops learning (torch
    only warns). Adapters need the gradient through every frozen layer, so that repacking
    is switched off, and a weight already repacked is unpacked again (bitsandbytes' own
    inverse, as its ``.cuda()`` does; absmax keeps its bf16 rounding)."""
    bnb = sys.modules.get("bitsandbytes")
    if bnb is None:
        return 0
    count = 0
    for module in model.modules():
        if not isinstance(module, bnb.nn.Linear4bit):
            continue
        count += 1
        module.support_avx512bf16_for_cpu = False
        weight = module.weight
        state = getattr(weight, "quant_state", None)
        if state is not None and getattr(state, "packing_format_for_cpu", False):
            unpack = bnb.functional._convert_weight_packed_for_cpu_inverse
            weight.data, weight.quant_state = unpack(weight.data, state)
    return count


@torch.no_grad()
def dequantized_weight(module: nn.Module) -> torch.Tensor:
    """The (out, in) float32 weight a bitsandbytes layer computes with."""
    bnb = require_bitsandbytes()
    weight = module.weight
    if isinstance(module, bnb.nn.Linear4bit):
        return bnb.functional.dequantize_4bit(weight.data, weight.quant_state).float()
    if isinstance(module, bnb.nn.Linear8bitLt):
        if weight.dtype != torch.int8:  # has_fp16_weights: not quantized yet
            return weight.data.float()
        scb = getattr(weight, "SCB", None)
        if scb is None:
            scb = module.state.SCB
        return bnb.functional.int8_vectorwise_dequant(weight.data, scb).float()
    raise TypeError(f"{type(module).__name__} is not a bitsandbytes linear layer")


@torch.no_grad()
def dequantize_model(model: nn.Module) -> nn.Module:
    """Replace every bitsandbytes linear layer of ``model`` (in place) by an ``nn.Linear``
    holding its dequantized weight: the full-precision reference of a quantized model."""
    targets = [name for name, module in model.named_modules() if is_quantized_linear(module)]
    for name in targets:
        module = model.get_submodule(name)
        weight = dequantized_weight(module)
        plain = nn.Linear(
            module.in_features, module.out_features, bias=module.bias is not None, device="meta"
        )
        plain.weight = nn.Parameter(weight, requires_grad=False)
        if module.bias is not None:
            plain.bias = nn.Parameter(module.bias.detach().float().clone(), requires_grad=False)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, plain)
    return model
