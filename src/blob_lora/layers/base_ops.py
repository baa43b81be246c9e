"""Shape and row access for the Linear-like modules that adapters wrap.

Adapters never touch the base weight directly except through these helpers, so a
quantized or otherwise exotic base layer only needs `in_features`/`out_features`.
bitsandbytes' `Linear8bitLt` / `Linear4bit` subclass nn.Linear but hold int8 or packed
4-bit weights: they are always run whole, through their own forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..errors import ConfigError
from .quantized import is_quantized_linear


def linear_shape(module: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of nn.Linear, GPT-2 Conv1D or a Linear-like layer."""
    if isinstance(module, Conv1D):
        return module.weight.shape[0], module.weight.shape[1]
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    in_f, out_f = getattr(module, "in_features", None), getattr(module, "out_features", None)
    if isinstance(in_f, int) and isinstance(out_f, int):
        return in_f, out_f
    raise ConfigError(
        f"cannot adapt module of type {type(module).__name__}: it is not nn.Linear, Conv1D "
        "or a layer with integer in_features/out_features; choose other target_modules"
    )


def is_adaptable(module: nn.Module) -> bool:
    try:
        linear_shape(module)
    except ConfigError:
        return False
    return True


def base_rows(module: nn.Module, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Output features `rows` of a frozen base layer, without computing the others."""
    if isinstance(module, Conv1D):
        out = x @ module.weight[:, rows]
        return out + module.bias[rows] if module.bias is not None else out
    if isinstance(module, nn.Linear) and not is_quantized_linear(module):
        bias = module.bias[rows] if module.bias is not None else None
        return F.linear(x, module.weight[rows], bias)
    return module(x)[..., rows]  # quantized or generic: correct, not cheaper
