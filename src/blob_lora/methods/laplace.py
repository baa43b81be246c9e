"""Laplace-LoRA (Yang et al., ICLR 2024): a post-hoc Kronecker-factored Laplace over the
LoRA weights of a trained MLE run, with a linearized (GLM) predictive.

Why our own KFAC and not laplace-torch: its Kronecker backends (curvlinops, ASDL) only
factor parameters owned by ``nn.Linear``/``Conv`` modules; our adapters hold ``lora_A``
and ``lora_B`` as bare parameters of one layer, and laplace-torch 0.3 rejects them
("Found parameters in un-supported layers"). The math is small enough to own:

- Curvature: the GGN ``sum_n J_n^T Lambda_n J_n`` (``Lambda = diag(p) - p p^T``, exact
  over the C classes, no label sampling) of each weight ``W`` (out x in, ``dW = g a^T``)
  is approximated by ``Q (x) G`` with ``Q = mean_n a_n a_n^T`` and
  ``G = sum_n g_n^T Lambda_n g_n`` (``g_n``: C x out, gradient of each class logit wrt the
  weight's output). Tokens share the weight and there is one output per sequence, so we
  use KFAC-reduce (Eschenhagen et al., 2023): ``a_n`` is the mean input over the tokens
  that reach the logits (gradient != 0: this drops padding), ``g_n`` the sum over tokens.
  For one example with one token the block is exact.
  lora_A: ``a = x``, ``g = s B^T (dlogit/d delta)``; lora_B: ``a = A x``,
  ``g = s dlogit/d delta`` - all from the adapter input and C backward passes.
  When scoring computes only some output rows (``forward_rows``: answer tokens of a
  262k-row LM head), lora_B's G lives on the rows seen; other rows keep the prior.
- Prior ``N(0, 1/delta)``; ``delta`` maximizes the Laplace log marginal likelihood
  ``log p(D|theta) - delta/2 |theta|^2 + P/2 log delta - 1/2 log det(Q (x) G + delta I)``,
  cheap from the eigenvalues (grid over 16 decades, then golden-section refinement:
  ``prior_fit="marglik"``), or, as laplace-lora through laplace-torch, by 100 Adam steps
  (lr 0.1) on ``log delta`` from ``delta = 1`` (``prior_fit="adam"``), which can stop short
  of the maximum.
  ``prior_structure`` gives one ``delta`` to all weights (``scalar``, Laplace-LoRA's
  default), one to all lora_A and one to all lora_B (``ab``), or one per weight
  (``layerwise``). The posterior is block-diagonal, so the evidence is a sum over blocks
  and each group's ``delta`` is found on its own. Why more than one: a scalar ``delta`` is
  set mostly by ``|lora_A|^2`` (random init, barely moved by a short run), which leaves
  lora_B - small, and the weights that carry the fine-tuning - with a prior far wider
  than its values, so the predictive can come out much less confident than the MAP.
- Predictive: ``f ~ N(logits, J Sigma J^T)`` per example, with ``J`` from the same C
  backward passes, rotated into each Kronecker eigenbasis. Probabilities are the mean
  softmax over ``link_samples`` draws of the C logits with their full covariance
  (``mc``, as Laplace-LoRA's code); the first N draws are the per-sample outputs (mutual
  information). The multiclass probit ``softmax(f / sqrt(1 + pi/8 var))`` (``probit``)
  needs no draws but sees only the diagonal: measured on Gemma-270M LoRA, about 95% of
  the logit variance is shared by all answer logits, which cancels in the softmax, and
  the probit takes all of it for uncertainty.

Fully trained modules (``modules_to_save``) stay point estimates.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from ..adapter_model import BlobModel
from ..errors import BlobLoraError, ConfigError
from ..layers import AdapterLayer
from .base import Method, PostTrainContext

log = logging.getLogger(__name__)

LINKS = ("probit", "mc")
FIT_SETS = ("train", "anchor")
PRIOR_STRUCTURES = ("scalar", "ab", "layerwise")
PRIOR_FITS = ("marglik", "adam")
DTYPES = {"float32": torch.float32, "float64": torch.float64}

Batch = dict[str, torch.Tensor]
# a weight's place in the posterior: (adapter name, "a" or "b")
BlockKey = tuple[str, str]
Precision = float | dict[BlockKey, float]
# per adapter call: input x (B, T, in), output rows (None: all), d logit_c / d delta (C, B, T, rows)
Call = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]


# -- one forward, C backward passes ---------------------------------------------------------
@contextlib.contextmanager
def _capture(layers: dict[str, AdapterLayer]) -> Iterator[dict[str, list]]:
    """Record every adapter's input and low-rank output, whatever path calls it.

    ``forward`` and ``forward_rows`` both go through ``delta``, and ``forward_rows`` is not
    a module call (no hooks fire), so an instance attribute shadows ``delta`` for the
    duration; deleting it restores the class method.
    """
    calls: dict[str, list] = {name: [] for name in layers}

    def recorder(name: str, original: Callable) -> Callable:
        def delta(x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
            out = original(x, rows)
            calls[name].append((x.detach(), rows, out))
            return out

        return delta

    for name, layer in layers.items():
        layer.delta = recorder(name, layer.delta)
    try:
        yield calls
    finally:
        for layer in layers.values():
            del layer.delta


def full_precision(model: BlobModel) -> torch.autocast:
    """Curvature and the linearized predictive in fp32 even in a bf16 run: the factors
    are sums of many small outer products."""
    device = next(iter(model.adapters().values())).lora_B.device.type
    return torch.autocast(device_type=device, enabled=False)


def jacobian_pass(
    model: BlobModel, class_logits: Callable[[], torch.Tensor]
) -> tuple[torch.Tensor, dict[str, list[Call]]]:
    """(logits (B, C), per layer the calls with the gradient of each class logit wrt the
    adapter output). Examples of a batch do not interact, so per-example Jacobians of the
    adapter weights follow from these per-token quantities."""
    layers = model.adapters()
    with (
        torch.enable_grad(),
        full_precision(model),
        model.sampling("mean"),
        _capture(layers) as raw,
    ):
        logits = class_logits().float()
        if logits.dim() != 2 or not logits.requires_grad:
            raise BlobLoraError(
                "laplace needs (B, C) class logits that depend on the adapters; got "
                f"shape {tuple(logits.shape)}, requires_grad={logits.requires_grad}"
            )
        n, c = logits.shape
        flat = [(name, call) for name, cs in raw.items() for call in cs]
        outs = [call[2] for _, call in flat]
        per_class = [
            torch.autograd.grad(logits[:, k].sum(), outs, retain_graph=k < c - 1, allow_unused=True)
            for k in range(c)
        ]
    calls: dict[str, list[Call]] = {name: [] for name in layers}
    for i, (name, (x, rows, out)) in enumerate(flat):
        if x.shape[0] != n:
            raise BlobLoraError(
                f"laplace: adapter {name} saw input of shape {tuple(x.shape)}; its first "
                f"dimension must be the example (batch size {n})"
            )
        grads = [g[i] if g[i] is not None else torch.zeros_like(out) for g in per_class]
        g = torch.stack(grads).detach().reshape(c, n, -1, out.shape[-1])
        x = x.reshape(n, -1, x.shape[-1])
        calls[name].append((x, rows, g))
    return logits.detach(), calls


# -- Kronecker blocks -----------------------------------------------------------------------
@dataclass
class KronBlock:
    """Precision ``Q (x) G`` of one weight (out x in, row-major vec), eigen-decomposed:
    the posterior covariance is then diagonal, ``1/(g_k q_l + delta)``, in the basis
    ``(U_G, U_Q)``."""

    in_vals: torch.Tensor  # (in,) eigenvalues of Q, float64
    in_vecs: torch.Tensor  # (in, in)
    out_vals: torch.Tensor  # (out,) eigenvalues of G
    out_vecs: torch.Tensor  # (out, out)

    @classmethod
    def from_factors(cls, q: torch.Tensor, g: torch.Tensor) -> KronBlock:
        qv, qe = torch.linalg.eigh(q)
        gv, ge = torch.linalg.eigh(g)
        return cls(qv.clamp_min(0), qe, gv.clamp_min(0), ge)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q, G) rebuilt from the eigen-decomposition (for checks)."""
        q = self.in_vecs @ torch.diag(self.in_vals) @ self.in_vecs.T
        g = self.out_vecs @ torch.diag(self.out_vals) @ self.out_vecs.T
        return q, g

    def eigenvalues(self) -> torch.Tensor:
        """Eigenvalues of ``Q (x) G``, shape (out, in)."""
        return self.out_vals[:, None] * self.in_vals[None, :]

    def variance(self, j: torch.Tensor, delta: float) -> torch.Tensor:
        """``J Sigma J^T`` for per-example, per-class Jacobians ``j`` (B, C, out, in)."""
        dt = j.dtype
        rotated = self.out_vecs.to(dt).T @ j @ self.in_vecs.to(dt)
        weights = (1.0 / (self.eigenvalues() + delta)).sqrt().to(dt)
        w = (rotated * weights).flatten(2)
        return w @ w.transpose(1, 2)


@dataclass
class LayerPosterior:
    """The two Kronecker blocks of one adapter; lora_B's only on the output ``rows`` seen
    during the fit (``lookup[row]`` is the position there, -1 for a row left at the prior)."""

    a: KronBlock
    b: KronBlock
    rows: torch.Tensor
    lookup: torch.Tensor


class _LayerStats:
    """Running sums of the Kronecker factors of one adapter during the fit."""

    def __init__(self, layer: AdapterLayer, max_out: int) -> None:
        dev, r = layer.lora_A.device, layer.r
        self.max_out = max_out
        self.q = torch.zeros(layer.in_features, layer.in_features, dtype=torch.float64, device=dev)
        self.g_a = torch.zeros(r, r, dtype=torch.float64, device=dev)
        self.g_b = torch.zeros(0, 0, dtype=torch.float64, device=dev)
        self.rows = torch.zeros(0, dtype=torch.long, device=dev)
        self.lookup = torch.full((layer.out_features,), -1, dtype=torch.long, device=dev)

    def positions(self, rows: torch.Tensor, name: str) -> torch.Tensor:
        """Positions of ``rows`` in the factor, growing it for rows not seen before."""
        new = rows[self.lookup[rows] < 0].unique()
        if new.numel():
            start = self.rows.numel()
            if start + new.numel() > self.max_out:
                raise ConfigError(
                    f"laplace: the output factor of {name} would be {start + new.numel()} "
                    f"rows square (max_out_factor={self.max_out}); score only some rows "
                    "(as multiple-choice does) or leave this module out of target_modules"
                )
            self.lookup[new] = torch.arange(start, start + new.numel(), device=rows.device)
            self.rows = torch.cat([self.rows, new])
            self.g_b = torch.nn.functional.pad(self.g_b, (0, new.numel(), 0, new.numel()))
        return self.lookup[rows]

    def add(self, name: str, layer: AdapterLayer, calls: list[Call], lam: torch.Tensor) -> None:
        c, n = lam.shape[1], lam.shape[0]
        s = layer.scaling
        b_w = layer.lora_B.detach().double()
        xs, masks, g_b_parts = [], [], []
        g_a = torch.zeros(c, n, layer.r, dtype=torch.float64, device=lam.device)
        for x, rows, g in calls:
            idx = _all_rows(layer, rows)
            pos = self.positions(idx, name)
            g = g.double()
            xs.append(x.double())
            masks.append((g != 0).any(-1).any(0))
            g_sum = g.sum(2)  # (C, B, rows): KFAC-reduce sums g over tokens
            g_a += s * g_sum @ b_w[idx]
            g_b_parts.append((pos, s * g_sum))
        g_b = torch.zeros(c, n, self.rows.numel(), dtype=torch.float64, device=lam.device)
        for pos, part in g_b_parts:
            g_b.index_add_(2, pos, part)
        x, mask = torch.cat(xs, 1), torch.cat(masks, 1).double()
        a = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        self.q += a.T @ a
        self.g_a += _ggn_factor(g_a, lam)
        self.g_b += _ggn_factor(g_b, lam)

    def finish(self, layer: AdapterLayer, n_fit: int, scale: float) -> LayerPosterior:
        q_a = self.q / n_fit
        a_w = layer.lora_A.detach().double()
        q_b = a_w @ q_a @ a_w.T  # inputs of lora_B are A x, so their mean is A (mean x)
        return LayerPosterior(
            a=KronBlock.from_factors(q_a, self.g_a * scale),
            b=KronBlock.from_factors(q_b, self.g_b * scale),
            rows=self.rows,
            lookup=self.lookup,
        )


def _all_rows(layer: AdapterLayer, rows: torch.Tensor | None) -> torch.Tensor:
    if rows is None:
        return torch.arange(layer.out_features, device=layer.lora_B.device)
    return rows.to(layer.lora_B.device)


def _ggn_factor(g: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """``sum_n g_n^T Lambda_n g_n`` for g (C, B, d), Lambda (B, C, C)."""
    weighted = torch.einsum("bcd,dbk->cbk", lam, g)
    return torch.einsum("cbj,cbk->jk", g, weighted)


def _softmax_hessian(logits: torch.Tensor) -> torch.Tensor:
    """``diag(p) - p p^T`` per example: the GGN of the cross-entropy in logit space."""
    p = torch.softmax(logits.double(), -1)
    return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]


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
                lam = _softmax_hessian(logits)
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
        _check_structure(structure)
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
            idxs = [_all_rows(layer, rows) for _, rows, _ in layer_calls]
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


def _check_structure(structure: str) -> None:
    if structure not in PRIOR_STRUCTURES:
        raise ConfigError(
            f"laplace prior_structure {structure!r} is unknown; use one of {PRIOR_STRUCTURES}"
        )


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


# -- the method -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LaplaceLoRA(Method):
    """Post-hoc KFAC Laplace on a trained LoRA; N=0 is the MAP, N>0 the GLM predictive."""

    link: str = "mc"  # mc: mean softmax of correlated draws; probit: diagonal closed form
    link_samples: int = 10000  # mc: draws of the class logits (cheap: C numbers each)
    prior_precision: float | None = None  # None: maximize the marginal likelihood
    fit_on: str = "train"  # train (the paper); anchor: the anchor subset, scaled to n_train
    prior_structure: str = "scalar"  # scalar (Laplace-LoRA), ab, layerwise: see the module doc
    max_out_factor: int = 16384
    compute_dtype: str = "float32"
    prior_fit: str = "marglik"  # marglik: the evidence's maximum; adam: laplace-torch's 100 steps

    def __post_init__(self) -> None:
        if self.prior_fit not in PRIOR_FITS:
            raise ConfigError(
                f"laplace prior_fit {self.prior_fit!r} is unknown; use one of {PRIOR_FITS}"
            )
        if self.link not in LINKS:
            raise ConfigError(f"laplace link {self.link!r} is unknown; use one of {LINKS}")
        if self.fit_on not in FIT_SETS:
            raise ConfigError(f"laplace fit_on {self.fit_on!r} is unknown; use one of {FIT_SETS}")
        _check_structure(self.prior_structure)
        if self.link_samples < 1:
            raise ConfigError("laplace link_samples must be >= 1")
        if self.compute_dtype not in DTYPES:
            raise ConfigError(f"laplace compute_dtype must be one of {sorted(DTYPES)}")
        if self.prior_precision is not None and self.prior_precision <= 0:
            raise ConfigError("laplace prior_precision must be > 0 (or None for marglik)")

    def post_train(self, model: BlobModel, context: PostTrainContext) -> BlobModel:
        batches = context.train_batches() if self.fit_on == "train" else context.anchor_batches()
        posterior = KronLaplace.fit(
            model,
            batches,
            context.class_logits,
            n_data=context.n_train,
            max_out_factor=self.max_out_factor,
            dtype=DTYPES[self.compute_dtype],
        )
        if self.prior_precision is None and self.prior_fit == "adam":
            found = posterior.optimize_prior_precision_adam(self.prior_structure)
        elif self.prior_precision is None:
            found = posterior.optimize_prior_precision(self.prior_structure)
        else:
            found = posterior.prior_precision = self.prior_precision
        values = list(found.values()) if isinstance(found, dict) else [found]
        log.info(
            "laplace: prior precision %.4g to %.4g over %d blocks",
            min(values),
            max(values),
            len(posterior.theta_sq),
        )
        model.laplace_posterior = posterior
        return model

    def predict(
        self, model: BlobModel, class_logits: Callable[[], torch.Tensor], n_samples: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if n_samples == 0:
            return super().predict(model, class_logits, 0)
        posterior = getattr(model, "laplace_posterior", None)
        if posterior is None:
            raise BlobLoraError(
                "laplace: this model has no fitted posterior; it is fitted after training "
                "(post_train) and is not saved with the adapter, so refit it before predicting"
            )
        with full_precision(model):
            mean, var = posterior.moments(model, class_logits)
        var = var.to(mean.dtype)
        if self.link == "probit":
            return probit_probs(mean, var), sample_probs(mean, var, n_samples)
        draws = sample_probs(mean, var, max(n_samples, self.link_samples))
        return draws.mean(0), draws[:n_samples]


METHOD = LaplaceLoRA(
    name="la",
    posterior_saved=False,
    default_eval_samples=(10,),
    cost=(
        "one LoRA run; post-hoc fit: one pass over the training set with 1 forward + C "
        "backward passes per batch; memory: Kronecker factors of in^2 + r^2 + r^2 + "
        "rows^2 floats per adapter (rows: output rows scored); prediction: 1 forward + C "
        "backward passes per batch (the mc link's draws are of C logits: negligible), "
        "N=0 is the MAP"
    ),
)
