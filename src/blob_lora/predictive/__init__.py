"""Model averaging: every method's predictive is one loop over its draws.

A *draw* is whatever makes the next pass differ: a weight sample (BLoB, BBB), dropout
masks (MC dropout), an ensemble member's weights. Methods say how to set a draw up;
`average_draws` runs the passes and combines them, so there is one loop to get right.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from ..adapter_model import BlobModel
from ..config import AdapterConfig
from .linearized import LINEAR, linearized_gaussian

COMBINES = ("probs", "logits")
HEAD = "head"  # the closed-form head prediction mode (config.PREDICT_MODES)
HEAD_DRAWS = 4096  # draws of the C class logits: Monte Carlo error under 0.01 of a probability
HEAD_KEPT = 64  # of them, kept per input for the mutual information


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
    if mode in (HEAD, LINEAR):
        raise ValueError(
            f"predict_sample_mode={mode} predicts class logits in closed form and draws no "
            "weights (generation samples whole networks: use sequence)"
        )
    with model.sampling(mode):
        yield from range(max(n_samples, 1))


def gaussian_softmax_draws(
    mean: torch.Tensor,
    cov: torch.Tensor,
    draws: int,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """softmax(transform(z)) of `draws` draws z ~ N(mean, cov): (draws, ..., C)."""
    mean, cov = mean.double(), cov.double()
    jitter = 1e-12 * torch.eye(mean.shape[-1], dtype=cov.dtype, device=cov.device)
    scale = torch.linalg.cholesky(cov + jitter)  # a rank-r covariance needs the jitter
    shape = (draws, *mean.shape)
    eps = torch.randn(shape, dtype=mean.dtype, device=mean.device, generator=generator)
    z = mean + torch.einsum("...cd,s...d->s...c", scale, eps)
    if transform is not None:
        z = transform(z)
    return torch.softmax(z, dim=-1)


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
    return gaussian_softmax_draws(mean, cov, draws, transform, generator).mean(0)


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
    mode = sample_mode or predict_noise(model.adapter_config)
    if n_samples and mode == HEAD:
        probs, each = head_predictive(model, class_logits)
    elif n_samples and mode == LINEAR:
        probs, each = linearized_predictive(model, class_logits)
    else:
        probs, each = average_draws(class_logits, weight_draws(model, n_samples, sample_mode))
    return (probs, each) if return_samples else probs


def head_layer(model: BlobModel) -> nn.Module:
    """The adapter on the model's output layer (a causal LM's lm_head, a classifier's
    `classifier` / `score`): the last Bayesian layer, linear in its A."""
    from ..tasks.lm_scoring import unwrap_lm

    inner = unwrap_lm(model.model)
    candidates = [
        getattr(inner, "classifier", None),
        getattr(inner, "score", None),
        inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None,
    ]
    for module in candidates:
        if hasattr(module, "output_gaussian"):
            return module
    raise ValueError(
        "predict_sample_mode=head needs a Bayesian (blob) adapter on the output layer: "
        "target lm_head (causal LMs) or head=lora (classifiers)"
    )


@torch.no_grad()
def head_predictive(
    model: BlobModel,
    class_logits: Callable[[], torch.Tensor],
    draws: int = HEAD_DRAWS,
    kept_draws: int = HEAD_KEPT,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs (B, C), per-draw probs (kept_draws, B, C)) in one forward pass: the trunk at
    its posterior mean, the head adapter's input captured, and the class logits' exact
    Gaussian over the head's posterior averaged through the softmax (`draws` draws of C
    logits). The per-draw probabilities give the head's mutual information."""
    layer = head_layer(model)
    seen: list[tuple[torch.Tensor, torch.Tensor | None]] = []

    def capture(x: torch.Tensor, rows: torch.Tensor | None, out: torch.Tensor) -> None:
        seen.append((x.detach(), rows))

    layer.delta_observers.append(capture)
    try:
        with model.sampling("mean"):
            logits = class_logits().double()
    finally:
        layer.delta_observers.remove(capture)
    x, rows = seen[-1]
    mean, cov = layer.output_gaussian(x, rows)
    finite = torch.isfinite(logits)
    if mean.shape != logits.shape or not torch.allclose(
        mean[finite], logits[finite], atol=1e-3, rtol=1e-3
    ):
        raise ValueError(
            "the class logits are not the output layer's rows (a transform or pooling after "
            "it): predict_sample_mode=head has no closed form for this model"
        )
    mean = torch.where(finite, mean, logits)  # absent choices stay -inf
    cov = cov * (finite[..., :, None] & finite[..., None, :])
    return gaussian_predictive(mean, cov, draws, kept_draws)


def gaussian_predictive(
    mean: torch.Tensor, cov: torch.Tensor, draws: int, kept_draws: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs, the first `kept_draws` per-draw probs, for the mutual information) of
    Gaussian class logits: one Cholesky and one set of draws."""
    each = gaussian_softmax_draws(mean, cov, draws)
    return each.mean(0).float(), each[:kept_draws].float()


def linearized_predictive(
    model: BlobModel,
    class_logits: Callable[[], torch.Tensor],
    draws: int = HEAD_DRAWS,
    kept_draws: int = HEAD_KEPT,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs (B, C), per-draw probs (kept_draws, B, C)) from one forward and C - 1 backward
    passes: the class logits' Gaussian under the linearized posterior of every Bayesian
    layer (predictive/linearized.py), averaged through the softmax by `draws` draws of C logits."""
    mean, cov = linearized_gaussian(model, class_logits)
    return gaussian_predictive(mean, cov, draws, kept_draws)
