"""The Kronecker-factored Laplace posterior: fit, evidence-maximizing prior, GLM predictive."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Literal

import torch

from ..adapter_model import BlobModel
from ..errors import ConfigError
from ..schema import validate_value
from .kfac import (
    Batch,
    BlockKey,
    Call,
    LayerPosterior,
    _LayerStats,
    all_rows,
    jacobian_pass,
    softmax_hessian,
)

log = logging.getLogger("blob_lora.methods.laplace")  # the method's logger, as before the split

PRIOR_STRUCTURES = ("scalar", "ab", "layerwise")

Precision = float | dict[BlockKey, float]


# -- the posterior --------------------------------------------------------------------------
class KronLaplace:
    """Kronecker-factored Laplace posterior over every adapter's lora_A and lora_B."""

    def __init__(
        self,
        layers: dict[str, LayerPosterior],
        theta_sq: dict[BlockKey, float],
        loglik: float,
        prior_precision: Precision = 1.0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.layers = layers
        self.theta_sq = theta_sq  # |weight|^2 per block
        self.loglik = loglik
        self.prior_precision = prior_precision  # a float, or a float per block
        self.dtype = dtype
        self._eigs = {
            (name, which): blk.eigenvalues().flatten().cpu()
            for name, lp in layers.items()
            for which, blk in (("a", lp.a), ("b", lp.b))
        }

    @classmethod
    def fit(
        cls,
        model: BlobModel,
        batches: Iterable[Batch],
        class_logits: Callable[[Batch], torch.Tensor],
        n_data: int | None = None,
        max_out_factor: int = 16384,
        dtype: torch.dtype = torch.float32,
    ) -> KronLaplace:
        """One forward + C backward passes per batch; the factors are scaled to ``n_data``
        examples when fitted on a subset."""
        layers = model.adapters()
        stats = {name: _LayerStats(layer, max_out_factor) for name, layer in layers.items()}
        n_fit, loglik = 0, 0.0
        was = model.training
        model.eval()
        try:
            for batch in batches:
                logits, calls = jacobian_pass(model, lambda b=batch: class_logits(b))
                lam = softmax_hessian(logits)
                labels = batch["labels"].to(logits.device)
                loglik += torch.log_softmax(logits.double(), -1).gather(1, labels[:, None]).sum()
                n_fit += logits.shape[0]
                for name, layer_calls in calls.items():
                    if layer_calls:
                        stats[name].add(name, layers[name], layer_calls, lam)
        finally:
            model.train(was)
        if n_fit == 0:
            raise ConfigError("laplace: the fit set is empty")
        scale = (n_data or n_fit) / n_fit
        posts = {name: stats[name].finish(layers[name], n_fit, scale) for name in layers}
        theta_sq = {
            (name, which): float(weight.detach().double().square().sum())
            for name, layer in layers.items()
            for which, weight in (("a", layer.lora_A), ("b", layer.lora_B))
        }
        return cls(posts, theta_sq, float(loglik) * scale, dtype=dtype)

    # -- prior precision ------------------------------------------------------------------
    def delta(self, key: BlockKey) -> float:
        """The prior precision of one block."""
        return _block_delta(self.prior_precision, key)

    def _block_evidence(self, key: BlockKey, delta: float) -> float:
        """A block's share of the evidence, without the shared log-likelihood. Rows of
        lora_B outside the fit's factor have zero curvature, so their ``log delta`` terms
        cancel and only their norm counts."""
        lam = self._eigs[key]
        return float(
            -0.5 * delta * self.theta_sq[key]
            + 0.5 * lam.numel() * math.log(delta)
            - 0.5 * torch.log(lam + delta).sum()
        )

    def log_marginal_likelihood(self, prior_precision: Precision | None = None) -> float:
        """Laplace evidence at ``prior_precision`` (default: the current one)."""
        p = self.prior_precision if prior_precision is None else prior_precision
        return self.loglik + sum(self._block_evidence(k, _block_delta(p, k)) for k in self._eigs)

    def prior_groups(self, structure: str) -> list[list[BlockKey]]:
        """The blocks that share one prior precision under ``structure``."""
        check_structure(structure)
        keys = list(self._eigs)
        if structure == "scalar":
            return [keys]
        if structure == "ab":
            return [g for g in ([k for k in keys if k[1] == w] for w in "ab") if g]
        return [[k] for k in keys]

    def optimize_prior_precision(
        self,
        structure: str = "scalar",
        log10_low: float = -6.0,
        log10_high: float = 10.0,
        points: int = 161,
    ) -> Precision:
        """Maximize the evidence: each group's ``delta`` on its own (the evidence is a sum
        over blocks), by a grid, then golden-section refinement around the best grid
        point. Sets and returns ``prior_precision``: a float for ``scalar``, else one float
        per block."""
        found: dict[BlockKey, float] = {}
        at_edge = 0
        groups = self.prior_groups(structure)
        for group in groups:

            def evidence(log10_delta: float, group: list[BlockKey] = group) -> float:
                return sum(self._block_evidence(k, 10.0**log10_delta) for k in group)

            best, edge = _maximize(evidence, log10_low, log10_high, points)
            at_edge += edge
            found.update(dict.fromkeys(group, 10.0**best))
        if at_edge:
            log.warning(
                "laplace: %d of %d prior precisions at the grid edge (10^%g or 10^%g)",
                at_edge,
                len(groups),
                log10_low,
                log10_high,
            )
        self.prior_precision = next(iter(found.values())) if structure == "scalar" else found
        return self.prior_precision

    def optimize_prior_precision_adam(
        self, structure: str = "scalar", steps: int = 100, lr: float = 0.1, init: float = 1.0
    ) -> Precision:
        """laplace-torch's marginal-likelihood fit: Adam on log delta per group."""
        found: dict[BlockKey, float] = {}
        for group in self.prior_groups(structure):
            log_delta = torch.tensor(math.log(init), dtype=torch.float64, requires_grad=True)
            opt = torch.optim.Adam([log_delta], lr=lr)
            for _ in range(steps):
                opt.zero_grad()
                delta = log_delta.exp()
                evidence = sum(
                    -0.5 * delta * self.theta_sq[k]
                    + 0.5 * self._eigs[k].numel() * log_delta
                    - 0.5 * torch.log(self._eigs[k].double() + delta).sum()
                    for k in group
                )
                (-evidence).backward()
                opt.step()
            found.update(dict.fromkeys(group, float(log_delta.detach().exp())))
        self.prior_precision = next(iter(found.values())) if structure == "scalar" else found
        return self.prior_precision

    # -- predictive -----------------------------------------------------------------------
    def function_variance(
        self, model: BlobModel, calls: dict[str, list[Call]], n: int, c: int
    ) -> torch.Tensor:
        """``J Sigma J^T`` (B, C, C) of the linearized model, block by block."""
        dt = self.dtype
        layers = model.adapters()
        device = next(iter(layers.values())).lora_A.device
        var = torch.zeros(n, c, c, dtype=dt, device=device)
        for name, layer_calls in calls.items():
            if not layer_calls:
                continue
            layer, post = layers[name], self.layers[name]
            s = layer.scaling
            a_w, b_w = layer.lora_A.detach().to(dt), layer.lora_B.detach().to(dt)
            idxs = [all_rows(layer, rows) for _, rows, _ in layer_calls]
            outside = torch.cat([i[post.lookup[i] < 0] for i in idxs]).unique()
            out_pos = torch.full_like(post.lookup, -1)
            out_pos[outside] = torch.arange(outside.numel(), device=outside.device)
            j_a = torch.zeros(n, c, layer.r, layer.in_features, dtype=dt, device=device)
            j_in = torch.zeros(n, c, post.rows.numel(), layer.r, dtype=dt, device=device)
            j_out = torch.zeros(n, c, outside.numel(), layer.r, dtype=dt, device=device)
            for (x, _, g), idx in zip(layer_calls, idxs, strict=True):
                x, g = x.to(dt), g.to(dt)
                h = x @ a_w.T
                j_b = s * torch.einsum("cbto,btr->bcor", g, h)
                j_a += torch.einsum("cbtr,bti->bcri", s * g @ b_w[idx], x)
                pos = post.lookup[idx]
                inside = pos >= 0
                j_in.index_add_(2, pos[inside], j_b[:, :, inside])
                j_out.index_add_(2, out_pos[idx[~inside]], j_b[:, :, ~inside])
            delta_a, delta_b = self.delta((name, "a")), self.delta((name, "b"))
            var += post.a.variance(j_a, delta_a) + post.b.variance(j_in, delta_b)
            flat = j_out.flatten(2)
            var += flat @ flat.transpose(1, 2) / delta_b
        return var

    def moments(
        self, model: BlobModel, class_logits: Callable[[], torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean logits (B, C), covariance (B, C, C), in ``dtype``) of the linearized
        predictive."""
        logits, calls = jacobian_pass(model, class_logits)
        n, c = logits.shape
        return logits, self.function_variance(model, calls, n, c)


def _block_delta(precision: Precision, key: BlockKey) -> float:
    return precision[key] if isinstance(precision, dict) else precision


def check_structure(structure: str) -> None:
    validate_value(Literal[PRIOR_STRUCTURES], structure, "method_options.prior_structure")


def _maximize(
    fn: Callable[[float], float], low: float, high: float, points: int
) -> tuple[float, bool]:
    """(argmax of ``fn`` over [low, high], whether it sits at an end of the grid): a grid,
    then golden-section refinement between the best point's neighbours."""
    grid = torch.linspace(low, high, points, dtype=torch.float64).tolist()
    values = [fn(g) for g in grid]
    best = max(range(points), key=values.__getitem__)
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, points - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        m1, m2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if fn(m1) >= fn(m2):
            hi = m2
        else:
            lo = m1
    refined = (lo + hi) / 2
    if fn(refined) < values[best]:
        refined = grid[best]
    return refined, best in (0, points - 1)


def probit_probs(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Multiclass probit approximation: ``softmax(f / sqrt(1 + pi/8 diag var))``."""
    kappa = torch.rsqrt(1.0 + math.pi / 8.0 * var.diagonal(dim1=-2, dim2=-1).clamp_min(0))
    return torch.softmax(mean * kappa, -1)


def sample_probs(mean: torch.Tensor, var: torch.Tensor, n_samples: int) -> torch.Tensor:
    """(S, B, C) softmax of draws from ``N(mean, var)``; -inf (absent choices) stays."""
    vals, vecs = torch.linalg.eigh(var)
    root = vecs * vals.clamp_min(0).sqrt().unsqueeze(-2)
    z = torch.randn(n_samples, *mean.shape, device=mean.device, dtype=mean.dtype)
    return torch.softmax(mean + torch.einsum("bcd,sbd->sbc", root, z), -1)
