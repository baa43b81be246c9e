"""bitsandbytes layers in a model (QLoRA style): recognizing them, keeping them trainable,
and dequantizing them for a full-precision reference.

bitsandbytes is an optional dependency (``pip install "blob-lora[quantized]"``); nothing here
imports it until a quantized layer is met or asked for. How a quantized base is loaded:
`blob_lora.models.quantization`.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import torch
from torch import nn

from .. import quiet_bitsandbytes
from ..errors import ConfigError

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
