"""Closed-form KL between a diagonal Gaussian posterior and a zero-mean Gaussian prior."""

from __future__ import annotations

import math

import torch


def gaussian_kl(mean: torch.Tensor, std: torch.Tensor, prior_std: float) -> torch.Tensor:
    """KL( N(mean, std^2) || N(0, prior_std^2) ), summed over all entries, in float64.

    float64 because the sum runs over millions of entries whose individual terms are
    large and nearly cancel (log(beta/sigma) ~ 4.4 per entry at init).
    """
    mean64, std64 = mean.double(), std.double()
    var_ratio = (std64 / prior_std) ** 2
    per_entry = (
        0.5 * (var_ratio + (mean64 / prior_std) ** 2 - 1.0) - torch.log(std64) + math.log(prior_std)
    )
    return per_entry.sum()
