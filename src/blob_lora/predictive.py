"""Model averaging: every method's predictive is one loop over its draws.

A *draw* is whatever makes the next pass differ: a weight sample (BLoB, BBB), dropout
masks (MC dropout), an ensemble member's weights. Methods say how to set a draw up;
`average_draws` runs the passes and combines them, so there is one loop to get right.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from .adapter_model import BlobModel
from .config import AdapterConfig

COMBINES = ("probs", "logits")


@torch.no_grad()
def average_draws(
    class_logits: Callable[[], torch.Tensor], draws: Iterable[object], combine: str = "probs"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs (B, C), per-draw probs (S, B, C)): one pass of `class_logits()` per draw.

    `draws` is iterated once per pass; each step sets the model up for that pass (and a
    generator's ``finally`` restores it). ``combine="probs"`` averages probabilities,
    Bayesian model averaging as the paper scores it (its NLL is -log of the average);
    ``"logits"`` averages logits and then takes the softmax (the authors' ensemble).
    """
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {COMBINES}, got {combine!r}")
    try:
        logits = [class_logits().float() for _ in draws]
    finally:  # a draw generator restores the model in its `finally`: now, even on error
        close = getattr(draws, "close", None)
        if close is not None:
            close()
    if not logits:
        raise ValueError("average_draws needs at least one draw")
    stacked = torch.stack(logits)
    each = torch.softmax(stacked, dim=-1)
    if combine == "logits":
        return torch.softmax(stacked.mean(0), dim=-1), each
    return each.mean(0), each


def predict_noise(cfg: AdapterConfig) -> str:
    """The noise an adapter's N samples are drawn with."""
    return cfg.predict_sample_mode or cfg.sample_mode


def weight_draws(model: BlobModel, n_samples: int, sample_mode: str | None = None):
    """The posterior's draws: the mean once for N=0, else N fresh weight samples, under
    the noise asked for, else the adapter's prediction noise, else its training noise."""
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    cfg = model.adapter_config
    mode = "mean" if n_samples == 0 else sample_mode or predict_noise(cfg)
    with model.sampling(mode):
        yield from range(max(n_samples, 1))


def gaussian_softmax_mean(
    mean: torch.Tensor,
    cov: torch.Tensor,
    draws: int = 4096,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """E[softmax(transform(z))] for z ~ N(mean, cov), by `draws` Monte Carlo draws of the C
    logits (C is small: a class or answer count, so each draw costs next to nothing).
    `transform` (e.g. Gemma's logit soft-capping) acts on each draw, as the model's own
    head would; mean (..., C), cov (..., C, C) -> probabilities (..., C)."""
    mean, cov = mean.double(), cov.double()
    jitter = 1e-12 * torch.eye(mean.shape[-1], dtype=cov.dtype, device=cov.device)
    scale = torch.linalg.cholesky(cov + jitter)  # a rank-r covariance needs the jitter
    shape = (draws, *mean.shape)
    eps = torch.randn(shape, dtype=mean.dtype, device=mean.device, generator=generator)
    z = mean + torch.einsum("...cd,s...d->s...c", scale, eps)
    if transform is not None:
        z = transform(z)
    return torch.softmax(z, dim=-1).mean(0)


def predictive_probs(
    model: BlobModel,
    class_logits: Callable[[], torch.Tensor],
    n_samples: int,
    sample_mode: str | None = None,
    return_samples: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Average of softmax(class_logits()) over `n_samples` weight samples.

    n_samples=0 is one pass with the posterior mean. With `return_samples` also returns
    the (S, B, C) per-sample probabilities (for mutual information).
    """
    if n_samples < 0:  # before the generator starts: the error belongs to the caller
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    probs, each = average_draws(class_logits, weight_draws(model, n_samples, sample_mode))
    return (probs, each) if return_samples else probs
