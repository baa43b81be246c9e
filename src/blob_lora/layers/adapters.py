"""Adapter layers: LoRA (point estimate), BLoB (Gaussian A), BBB (Gaussian A and B).

Each wraps a frozen Linear-like base and adds ``s * B A x``. Bayesian factors are
``N(mean, Omega^2)`` with ``Omega = G*G`` (or ``softplus(G)``); the mean starts as LoRA's A
(kaiming-uniform) and G uniform in ``[eps/sqrt(2), eps]`` (BLoB paper, section 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import AdapterConfig
from .base_ops import base_rows, linear_shape
from .flipout import flipout_noise
from .kl import gaussian_kl
from .sampling import NoiseState


def _init_std_param(shape: tuple[int, ...], eps: float, std_param: str) -> torch.Tensor:
    g = torch.empty(shape).uniform_(eps / math.sqrt(2.0), eps)
    if std_param == "square":
        return g
    # softplus: start at the same Omega = g^2 as the square parametrization
    return torch.log(torch.expm1(g * g))


class AdapterLayer(nn.Module):
    """Base for all adapters: frozen base + low-rank delta; no KL."""

    is_bayesian = False

    def __init__(self, base: nn.Module, config: AdapterConfig) -> None:
        super().__init__()
        self.base = base
        self.in_features, self.out_features = linear_shape(base)
        self.r = config.r
        self.scaling = config.scaling
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.lora_A = nn.Parameter(torch.empty(self.r, self.in_features))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, self.r))
        self.init_std_eps = config.init_std_eps
        self.std_param = config.std_param
        self.noise = NoiseState(default_sample_mode=config.sample_mode)
        # called as observer(x, rows, delta) by every `delta`, whichever path calls it
        # (`forward_rows` is not a module call, so module hooks would miss it): how
        # Laplace's curvature pass sees each adapter's input and output
        self.delta_observers: list[Callable[..., None]] = []
        self.reset_adapter()

    @torch.no_grad()
    def reset_adapter(self) -> None:
        """Fresh init (as LoRA: A kaiming-uniform with bound 1/sqrt(in), B = 0); also how
        ensemble members get independent starts."""
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B.zero_()

    # -- the math -----------------------------------------------------------------------
    def low_rank(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        """h = A x, shape (..., r)."""
        return F.linear(x, self.lora_A)

    def up(self, h: torch.Tensor, mode: str, rows: torch.Tensor | None = None) -> torch.Tensor:
        """B h (restricted to output `rows` if given), shape (..., out)."""
        weight = self.lora_B if rows is None else self.lora_B[rows]
        return F.linear(h, weight)

    def delta(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        mode = self.noise.resolve(self.training)
        out = self.up(self.low_rank(self.dropout(x.to(self.lora_A.dtype)), mode), mode, rows)
        out = out * self.scaling
        for observe in self.delta_observers:
            observe(x, rows, out)
        return out

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        out = self.base(x, *args, **kwargs)
        return out + self.delta(x).to(out.dtype)

    def forward_rows(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        out = base_rows(self.base, x, rows)
        return out + self.delta(x, rows).to(out.dtype)

    def kl(self) -> torch.Tensor:
        return torch.zeros((), dtype=torch.float64, device=self.lora_A.device)

    def mean_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, B) of the posterior mean: what a plain LoRA with the same N=0 output uses."""
        return self.lora_A.detach(), self.lora_B.detach()

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, r={self.r}, s={self.scaling:g}"


class LoRALayer(AdapterLayer):
    """Plain LoRA: the MLE / MAP / MC-dropout / ensemble member adapter."""


def _sample_batched(
    mean: torch.Tensor, std: torch.Tensor, noise: NoiseState, key: str, batch: int
) -> torch.Tensor:
    """(batch, *mean.shape) samples mean + std * eps: one weight sample per sequence."""
    eps = noise.draw(key, (batch, *mean.shape), mean)
    return mean + std * eps


def _as_batched(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """View x (B, ..., d) as (B, L, d); the first dimension is the example."""
    if x.dim() == 1:
        x = x.unsqueeze(0)
    shape = x.shape
    return x.reshape(shape[0], -1, shape[-1]), shape[:-1]


class BLoBLayer(AdapterLayer):
    """BLoB: A ~ N(M, Omega^2) element-wise, B a point estimate ("asymmetric")."""

    is_bayesian = True

    def __init__(self, base: nn.Module, config: AdapterConfig) -> None:
        super().__init__(base, config)
        self.prior_std = config.prior_std
        self.lora_A_g = nn.Parameter(
            _init_std_param((self.r, self.in_features), config.init_std_eps, config.std_param)
        )

    @torch.no_grad()
    def reset_adapter(self) -> None:
        super().reset_adapter()
        if hasattr(self, "lora_A_g"):
            self.lora_A_g.copy_(
                _init_std_param(tuple(self.lora_A_g.shape), self.init_std_eps, self.std_param)
            )

    def _std(self, g: torch.Tensor) -> torch.Tensor:
        return g * g if self.std_param == "square" else F.softplus(g)

    @property
    def std_A(self) -> torch.Tensor:
        return self._std(self.lora_A_g)

    def low_rank(self, x: torch.Tensor, mode: str) -> torch.Tensor:
        if mode == "mean":
            return F.linear(x, self.lora_A)
        if mode == "sequence":
            xb, lead = _as_batched(x)
            a = _sample_batched(self.lora_A, self.std_A, self.noise, "A", xb.shape[0])
            return torch.bmm(xb, a.transpose(1, 2)).reshape(*lead, self.r)
        if mode == "flipout":
            e = self.std_A * self.noise.draw("A", tuple(self.lora_A.shape), self.lora_A)
            flips_in = self.noise.flips(tuple(x.shape), x)
            flips_r = self.noise.flips((*x.shape[:-1], self.r), x)
            return F.linear(x, self.lora_A) + flipout_noise(x, e, flips_in, flips_r)
        raise ValueError(f"unknown sampling mode {mode!r}")

    def kl(self) -> torch.Tensor:
        return gaussian_kl(self.lora_A, self.std_A, self.prior_std)

    @torch.no_grad()
    def output_gaussian(
        self, x: torch.Tensor, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact distribution of this layer's output `rows` given its input x (..., in),
        over the posterior of A: the output is linear in A, and A's entries are independent
        Gaussians, so it is Gaussian with mean ``base(x) + s B M x`` and covariance
        ``s^2 B diag(Omega^2 x^2) B^T`` (one coherent sample of A per input, as the
        `sequence` mode draws). Returns (mean (..., C), covariance (..., C, C)), float64."""
        rows_idx = torch.arange(self.out_features, device=x.device) if rows is None else rows
        x64 = x.double()
        with torch.autocast(device_type=x.device.type, enabled=False):  # exact, not bf16
            exact = torch.promote_types(x.dtype, torch.float32)  # float64 stays float64
            base = base_rows(self.base, x.to(exact), rows_idx).double()
        b = self.lora_B[rows_idx].double() * self.scaling  # (C, r)
        mean = base + F.linear(F.linear(x64, self.lora_A.double()), b)
        var = F.linear(x64**2, self.std_A.double() ** 2)  # (..., r): Var[(A x)_k]
        cov = torch.einsum("ck,...k,dk->...cd", b, var, b)
        return mean, cov


class BBBLayer(BLoBLayer):
    """Bayes by backprop on both factors: B ~ N(B_mean, Omega_B^2) as well."""

    def __init__(self, base: nn.Module, config: AdapterConfig) -> None:
        super().__init__(base, config)
        self.lora_B_g = nn.Parameter(
            _init_std_param((self.out_features, self.r), config.init_std_eps, config.std_param)
        )

    @torch.no_grad()
    def reset_adapter(self) -> None:
        super().reset_adapter()
        if hasattr(self, "lora_B_g"):
            self.lora_B_g.copy_(
                _init_std_param(tuple(self.lora_B_g.shape), self.init_std_eps, self.std_param)
            )

    @property
    def std_B(self) -> torch.Tensor:
        return self._std(self.lora_B_g)

    def up(self, h: torch.Tensor, mode: str, rows: torch.Tensor | None = None) -> torch.Tensor:
        mean = self.lora_B if rows is None else self.lora_B[rows]
        std = self.std_B if rows is None else self.std_B[rows]
        if mode == "mean":
            return F.linear(h, mean)
        if mode == "sequence":
            hb, lead = _as_batched(h)
            eps = self.noise.draw("B", (hb.shape[0], *self.lora_B.shape), self.lora_B)
            if rows is not None:
                eps = eps[:, rows]
            b = mean + std * eps
            return torch.bmm(hb, b.transpose(1, 2)).reshape(*lead, mean.shape[0])
        if mode == "flipout":
            eps = self.noise.draw("B", tuple(self.lora_B.shape), self.lora_B)
            e = std * (eps if rows is None else eps[rows])
            flips_in = self.noise.flips(tuple(h.shape), h)
            flips_out = self.noise.flips((*h.shape[:-1], mean.shape[0]), h)
            return F.linear(h, mean) + flipout_noise(h, e, flips_in, flips_out)
        raise ValueError(f"unknown sampling mode {mode!r}")

    def kl(self) -> torch.Tensor:
        return super().kl() + gaussian_kl(self.lora_B, self.std_B, self.prior_std)

    def output_gaussian(
        self, x: torch.Tensor, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(
            "BBB's output is a product of two Gaussian factors, not Gaussian: no closed form"
        )


LAYER_TYPES: dict[str, type[AdapterLayer]] = {
    "lora": LoRALayer,
    "blob": BLoBLayer,
    "bbb": BBBLayer,
}
