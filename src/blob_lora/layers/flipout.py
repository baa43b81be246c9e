"""Flipout's noise path, ``F.linear(x * s_in, E) * s_out``, at close to LoRA's cost.

Autograd on the plain expression keeps, per adapted layer, the sign tensor s_in and the
product x * s_in, each the size of the layer's input: twice LoRA's own activation for that
layer. Here the signs are kept as booleans (a byte each) and x * s_in is recomputed in the
backward pass from x, which LoRA's own path keeps anyway. The forward values are the plain
expression's, bit for bit, and so are the signs drawn for a seed (sampling.NoiseState.flips).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def as_signs(flips: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Booleans -> +-1 in `dtype` (True is +1)."""
    return flips.to(dtype) * 2 - 1


class _FlipoutNoise(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, noise, flips_in, flips_out):
        out = F.linear(x * as_signs(flips_in, x.dtype), noise)
        ctx.save_for_backward(x, noise, flips_in, flips_out)
        ctx.dtypes = (out.dtype, x.dtype)
        # the out-signs in x's dtype, as the plain expression multiplies (under autocast the
        # product is promoted back to x's dtype: the same values as before)
        return out * as_signs(flips_out, x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, noise, flips_in, flips_out = ctx.saved_tensors
        low, _ = ctx.dtypes
        g = (grad * as_signs(flips_out, grad.dtype)).to(low)  # d/d(x s_in E^T)
        grad_x = grad_noise = None
        if ctx.needs_input_grad[0]:
            grad_x = (g @ noise.to(low)) * as_signs(flips_in, low)
            grad_x = grad_x.to(x.dtype)
        if ctx.needs_input_grad[1]:
            flipped = (x * as_signs(flips_in, x.dtype)).to(low)
            grad_noise = g.reshape(-1, g.shape[-1]).t() @ flipped.reshape(-1, x.shape[-1])
            grad_noise = grad_noise.to(noise.dtype)
        return grad_x, grad_noise, None, None


def flipout_noise(
    x: torch.Tensor, noise: torch.Tensor, flips_in: torch.Tensor, flips_out: torch.Tensor
) -> torch.Tensor:
    """``F.linear(x * s_in, noise) * s_out`` with s = +-1 from the boolean `flips`."""
    return _FlipoutNoise.apply(x, noise, flips_in, flips_out)
