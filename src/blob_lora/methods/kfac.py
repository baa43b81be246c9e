"""Laplace-LoRA's KFAC: per-adapter Jacobians and the GGN's Kronecker factors (math: laplace.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..adapter_model import BlobModel
from ..errors import BlobLoraError, ConfigError
from ..layers import AdapterLayer

Batch = dict[str, torch.Tensor]
# a weight's place in the posterior: (adapter name, "a" or "b")
BlockKey = tuple[str, str]
# per adapter call: input x (B, T, in), output rows (None: all), d logit_c / d delta (C, B, T, rows)
Call = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]


# -- one forward, C backward passes ---------------------------------------------------------
@contextlib.contextmanager
def _capture(layers: dict[str, AdapterLayer]) -> Iterator[dict[str, list]]:
    """Record every adapter's input and low-rank output through its declared
    ``delta_observers`` hook, on whichever path (``forward`` or ``forward_rows``) calls it."""
    calls: dict[str, list] = {name: [] for name in layers}
    observers = {}
    for name, layer in layers.items():

        def observe(x, rows, out, record=calls[name]) -> None:
            record.append((x.detach(), rows, out))

        observers[name] = observe
        layer.delta_observers.append(observe)
    try:
        yield calls
    finally:
        for name, layer in layers.items():
            layer.delta_observers.remove(observers[name])


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
            idx = all_rows(layer, rows)
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


def all_rows(layer: AdapterLayer, rows: torch.Tensor | None) -> torch.Tensor:
    if rows is None:
        return torch.arange(layer.out_features, device=layer.lora_B.device)
    return rows.to(layer.lora_B.device)


def _ggn_factor(g: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """``sum_n g_n^T Lambda_n g_n`` for g (C, B, d), Lambda (B, C, C)."""
    weighted = torch.einsum("bcd,dbk->cbk", lam, g)
    return torch.einsum("cbj,cbk->jk", g, weighted)


def softmax_hessian(logits: torch.Tensor) -> torch.Tensor:
    """``diag(p) - p p^T`` per example: the GGN of the cross-entropy in logit space."""
    p = torch.softmax(logits.double(), -1)
    return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
