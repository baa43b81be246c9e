"""TFB: training-free Bayesianization of a trained LoRA (Shi et al., NeurIPS 2025).

A trained LoRA ``dW = s B A`` becomes a BLoB layer without any training:

- SVD ``B = U diag(d) V^T``; reparametrize ``B' = U diag(d)``, ``A' = V^T A`` (so
  ``B'A' = BA`` and the N=0 output is unchanged);
- make A' Gaussian, ``A'_ij ~ N(A'_ij, (beta / d_i)^2)``. Then ``B'(A' - mean)`` has iid
  ``N(0, beta^2)`` coordinates in the column space of U: a low-rank isotropic Gaussian
  over ``dW / s`` with the one scale ``beta``;
- choose ``beta`` as the largest value whose N-sample predictive on the anchor set loses
  at most ``tolerance`` against the mean model (bisection in log space, the noise seed
  fixed per evaluation so the criterion is a smooth function of beta).

``bisection="log"`` (ours): the NLL criterion is a plain relative change and the bisection
runs over a wide log-scale bracket, returning the largest beta that passes.
``bisection="authors"`` (their code): a linear bisection over [beta_min, beta_max]
(0.001, 0.015 in their scripts) for ``max_iters`` steps; the criterion is the absolute
relative NLL change *divided by the anchor-set size* (so threshold 0.003 allows a large
change), and the result is the last beta that *failed* it, or beta_max when none did.

The BLoB layers are built around the LoRA layers' own ``base`` modules, so base weights
are shared, never copied; the result is a ``kind="blob"`` BlobModel over the same
transformers model (it saves and reloads as any BLoB adapter).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from ..adapter_model import BlobModel
from ..errors import ConfigError
from ..predictive import predictive_probs
from ..schema.types import Count, NonNegativeFloat, Positive, PositiveFloat
from .base import Method, PostTrainContext

log = logging.getLogger(__name__)

METRICS = ("nll", "acc")
BISECTIONS = ("log", "authors")
ANCHOR_LABELS = ("pseudo", "true")
_RANK_TOL = 1e-6  # singular values below this fraction of the largest get no noise


@dataclass
class AnchorScore:
    """One evaluation of the anchor set: NLL and accuracy against the anchor labels."""

    nll: float
    acc: float


@torch.no_grad()
def bayesianize(model: BlobModel) -> tuple[BlobModel, dict[str, torch.Tensor]]:
    """Swap every adapter for a BLoB layer with ``B' = U diag(d)``, ``A' = V^T A``.

    Returns the new BlobModel (same transformers model, same base modules) and, per layer,
    ``1/d_i`` (0 where ``d_i`` is numerically zero or absent: that direction of A' is
    unused, and infinite noise times a zero column would give NaN).
    """
    cfg = replace(model.adapter_config, kind="blob", std_param="square")
    layers = model.adapters()
    means = {name: layer.mean_weights() for name, layer in layers.items()}
    for name, layer in layers.items():
        _replace_module(model.model, name, layer.base)  # unwrap; BlobModel re-injects
    with torch.random.fork_rng(devices=[]):  # the fresh layers' init must not move the RNG
        blob = BlobModel(model.model, cfg)
    inv_d: dict[str, torch.Tensor] = {}
    for name, layer in blob.adapters().items():
        a, b = (t.to(torch.float64) for t in means[name])
        # V must be the full r x r: when out < r only k = out singular values exist, and
        # the other rows of A' span B's null space (zero columns of B', no noise). The thin
        # SVD gives that whenever out >= r; a full U of a (vocab x r) output-layer B would
        # be vocab x vocab (262k^2 doubles for Gemma), so ask for it only when out < r.
        u, d, vh = torch.linalg.svd(b, full_matrices=b.shape[0] < b.shape[1])
        k = d.numel()
        b_new = torch.zeros_like(b)
        b_new[:, :k] = u[:, :k] * d
        layer.lora_B.copy_(b_new)
        layer.lora_A.copy_(vh @ a)
        keep = d > _RANK_TOL * d.max().clamp_min(torch.finfo(torch.float64).tiny)
        inv = torch.zeros(layer.r, dtype=torch.float64, device=d.device)
        inv[:k] = torch.where(keep, 1.0 / d.clamp_min(1e-300), torch.zeros_like(d))
        inv_d[name] = inv.to(layer.lora_A.dtype)
    return blob, inv_d


def _replace_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


@torch.no_grad()
def set_beta(model: BlobModel, inv_d: dict[str, torch.Tensor], beta: float) -> None:
    """std of A'_ij = beta / d_i (std_param "square": G = sqrt(std))."""
    for name, layer in model.adapters().items():
        std = (beta * inv_d[name]).unsqueeze(1).expand_as(layer.lora_A_g)
        layer.lora_A_g.copy_(std.sqrt())


@dataclass(frozen=True)
class TFBState:
    """The variance scale the search found (sigma^2 = beta / d_i of each A row)."""

    beta: float


@dataclass(frozen=True)
class TFB(Method):
    """Post-hoc: Bayesianize a plain LoRA by SVD and a variance search on the anchor set."""

    metric: Literal[METRICS] = "nll"  # nll: relative NLL increase; acc: absolute accuracy drop
    tolerance: NonNegativeFloat = 0.01
    anchor_labels: Literal[ANCHOR_LABELS] = (
        "pseudo"  # pseudo: the mean model's argmax (the authors'); true
    )
    search_samples: Positive = 5
    beta_min: PositiveFloat = 1e-4
    beta_max: PositiveFloat = 1.0
    max_iters: Count = 8
    bisection: Literal[BISECTIONS] = "log"  # log (ours) | authors: see the module doc

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.beta_min < self.beta_max:
            raise ConfigError(
                f"tfb needs beta_min < beta_max, got {self.beta_min}, {self.beta_max}"
            )

    # -- the search -----------------------------------------------------------------------
    def post_train(self, model: BlobModel, context: PostTrainContext) -> BlobModel:
        blob, inv_d = bayesianize(model)
        was = blob.training
        blob.eval()
        try:
            beta = self.search(blob, inv_d, context)
        finally:
            blob.train(was)
        set_beta(blob, inv_d, beta)
        blob.method_state = TFBState(beta)
        return blob

    def search(
        self, model: BlobModel, inv_d: dict[str, torch.Tensor], context: PostTrainContext
    ) -> float:
        """Largest beta in [beta_min, beta_max] (to a factor (max/min)^(2^-max_iters)) whose
        anchor degradation is within tolerance; beta_min when even that one is not."""
        batches = list(context.anchor_batches())
        if not batches:
            raise ConfigError("tfb needs a non-empty anchor set (anchor_size > 0)")
        labels, reference = self.reference(model, batches, context.class_logits)
        if self.bisection == "authors":
            n_anchor = sum(len(b) for b in labels)

            def fails(beta: float) -> bool:
                set_beta(model, inv_d, beta)
                score = self.score(model, batches, context.class_logits, labels, context.seed)
                change = abs(score.nll - reference.nll) / max(reference.nll, 1e-12)
                return change / n_anchor > self.tolerance

            return authors_bisection(fails, self.beta_min, self.beta_max, self.max_iters)

        def ok(beta: float) -> bool:
            set_beta(model, inv_d, beta)
            score = self.score(model, batches, context.class_logits, labels, context.seed)
            return self.degradation(reference, score) <= self.tolerance

        lo, hi = self.beta_min, self.beta_max
        if ok(hi):
            return hi
        for _ in range(self.max_iters):
            mid = math.sqrt(lo * hi)
            if ok(mid):
                lo = mid
            else:
                hi = mid
        log.info("tfb: beta=%.4g (next tried %.4g violates %s tolerance)", lo, hi, self.metric)
        return lo

    def degradation(self, reference: AnchorScore, score: AnchorScore) -> float:
        """How much worse than the mean model: relative NLL increase or accuracy drop."""
        if self.metric == "acc":
            return reference.acc - score.acc
        return (score.nll - reference.nll) / max(reference.nll, 1e-12)

    def reference(
        self,
        model: BlobModel,
        batches: list[dict[str, torch.Tensor]],
        class_logits: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    ) -> tuple[list[torch.Tensor], AnchorScore]:
        """The labels the anchor set is scored against, and the mean model's score."""
        labels, probs = [], []
        for batch in batches:
            p = predictive_probs(model, lambda b=batch: class_logits(b), 0)
            probs.append(p)
            labels.append(p.argmax(-1) if self.anchor_labels == "pseudo" else batch["labels"])
        return labels, _score(probs, labels)

    def score(
        self,
        model: BlobModel,
        batches: list[dict[str, torch.Tensor]],
        class_logits: Callable[[dict[str, torch.Tensor]], torch.Tensor],
        labels: list[torch.Tensor],
        seed: int = 0,
    ) -> AnchorScore:
        """Anchor score of the ``search_samples``-sample predictive under a fixed noise
        seed, so two betas see the same standard-normal draws (common random numbers)."""
        devices = [model.device] if model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            probs = [
                predictive_probs(model, lambda b=batch: class_logits(b), self.search_samples)
                for batch in batches
            ]
        return _score(probs, labels)


def authors_bisection(fails: Callable[[float], bool], low: float, high: float, iters: int) -> float:
    """The authors' search: halve [low, high] `iters` times, keeping the last midpoint that
    failed the criterion (and moving down from it); `high` if none failed."""
    best = high
    for _ in range(iters):
        mid = (low + high) / 2
        if fails(mid):
            best = high = mid
        else:
            low = mid
    return best


def _score(probs: Iterable[torch.Tensor], labels: Iterable[torch.Tensor]) -> AnchorScore:
    p = torch.cat([x.float().cpu() for x in probs])
    y = torch.cat([x.long().cpu() for x in labels])
    picked = p.gather(1, y.unsqueeze(1)).squeeze(1)
    nll = -picked.clamp_min(1e-12).log().mean().item()
    acc = (p.argmax(-1) == y).float().mean().item()
    return AnchorScore(nll=nll, acc=acc)


METHOD = TFB(
    name="tfb",
    post_hoc_of="mle",
    sharding_refusal="its variance search evaluates the anchor set on one process",
    posterior_trained=False,
    paper_options={
        "bisection": "authors",
        "tolerance": 0.003,
        "max_iters": 5,
        "beta_min": 0.001,
        "beta_max": 0.015,
        "search_samples": 10,
    },
    default_eval_samples=(10,),
    cost=(
        "one LoRA run; post-hoc, no gradients: an SVD per layer and a bisection of at most "
        "max_iters+1 anchor-set evaluations x search_samples passes (defaults 9 x 5); "
        "+r*in std parameters per layer; N passes at N samples"
    ),
)
