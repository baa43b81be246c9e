"""Bayesian model averaging: the predictive is the mean of the sampled probabilities."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .adapter_model import BlobModel


@torch.no_grad()
def predictive_probs(
    model: BlobModel,
    class_logits: Callable[[], torch.Tensor],
    n_samples: int,
    sample_mode: str | None = None,
    return_samples: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Average of softmax(class_logits()) over `n_samples` weight samples.

    n_samples=0 is one pass with the posterior mean. The NLL of the result is
    -log of the averaged probability, as the paper reports it. With `return_samples`
    also returns the (S, B, C) per-sample probabilities (for mutual information).
    """
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    if n_samples == 0:
        with model.sampling("mean"):
            probs = torch.softmax(class_logits().float(), dim=-1)
        return (probs, probs.unsqueeze(0)) if return_samples else probs
    mode = sample_mode or model.adapter_config.sample_mode
    samples = []
    with model.sampling(mode):
        for _ in range(n_samples):
            samples.append(torch.softmax(class_logits().float(), dim=-1))
    stacked = torch.stack(samples)
    probs = stacked.mean(0)
    return (probs, stacked) if return_samples else probs
