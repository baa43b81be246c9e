"""The linearized (GLM) predictive: every Bayesian layer's weight noise pushed to the class
logits through the network's Jacobian at the posterior mean.

Whole-network sampling costs N forward passes because the trunk's noise changes every
later activation. To first order in the noise it is cheaper: with A = M + E and E's
entries independent N(0, Omega^2), the logits are f(M) + sum_l <dF/dA_l, E_l>, a Gaussian
whose covariance needs only the gradients of the logits with respect to each A, per
example. A layer's gradient is sum_t (s B^T g_t) x_t^T, from its input x_t and the gradient
g_t at its output, so one forward pass and, per class contrast, one backward pass give
every example's logit covariance. Softmax is blind to a shift common to all classes, so
the covariance is that of the logits relative to the first class: C - 1 backward passes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..adapter_model import BlobModel
from ..layers import BLoBLayer

LINEAR = "linear"  # the prediction mode's name (config.PREDICT_MODES)
# one adapter call seen in the forward pass: (layer, its input, output rows, its output)
Call = tuple[BLoBLayer, torch.Tensor, torch.Tensor | None, torch.Tensor]


def bayesian_layers(model: BlobModel) -> list[BLoBLayer]:
    """The layers whose A is Gaussian with a point-estimate B (blob and tfb adapters)."""
    layers = [
        layer
        for layer in model.adapters().values()
        if isinstance(layer, BLoBLayer) and not hasattr(layer, "lora_B_g")
    ]
    if not layers:
        raise ValueError(
            "predict_sample_mode=linear needs Bayesian adapters with a Gaussian A and a point "
            "B (kind blob, or a tfb run)"
        )
    return layers


def _per_example(t: torch.Tensor) -> torch.Tensor:
    """View (B, ..., d) as (B, L, d): the first dimension is the example."""
    return t.reshape(t.shape[0], -1, t.shape[-1])


def linearized_gaussian(
    model: BlobModel, class_logits: Callable[[], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (B, C), covariance (B, C, C)), float64: the class logits at the posterior
    mean, and the covariance of the logits relative to the first class's under the
    linearized posterior (one coherent A per example, as the `sequence` mode draws).
    Absent choices (-inf logits) get no variance; every example needs its first class."""
    logits, _, weighted = _linearize(model, class_logits)
    batch, classes = logits.shape
    cov = torch.zeros(batch, classes, classes, dtype=torch.float64, device=logits.device)
    for k, wk in enumerate(weighted, start=1):
        for j, wj in enumerate(weighted, start=1):
            if j < k:
                continue
            value = sum((a * b).sum(-1) for a, b in zip(wk, wj, strict=True))
            cov[:, k, j] = value
            cov[:, j, k] = value
    absent = ~torch.isfinite(logits)
    cov = cov.masked_fill(absent[:, :, None] | absent[:, None, :], 0.0)
    return logits, cov


def variance_by_layer(
    model: BlobModel, class_logits: Callable[[], torch.Tensor]
) -> dict[str, torch.Tensor]:
    """{adapter name: (B, C-1)}: each layer's part of every contrast's linearized variance
    (the parts sum to the covariance's diagonal): where the predictions' uncertainty comes
    from, and so which layers a cheaper predictive could not leave out."""
    _, layers, weighted = _linearize(model, class_logits)
    names = {id(layer): name for name, layer in model.adapters().items()}
    return {
        names[id(layer)]: torch.stack([(w[i] ** 2).sum(-1) for w in weighted], dim=-1)
        for i, layer in enumerate(layers)
    }


def _linearize(
    model: BlobModel, class_logits: Callable[[], torch.Tensor]
) -> tuple[torch.Tensor, list[BLoBLayer], list[list[torch.Tensor]]]:
    """(logits at the mean (B, C) float64, the Bayesian layers, per contrast k = 1..C-1
    per layer each example's gradient of f_k - f_0 in A times Omega (B, r * in))."""
    layers = bayesian_layers(model)
    calls: list[Call] = []
    observers = []
    for layer in layers:

        def observe(x, rows, out, layer=layer) -> None:
            calls.append((layer, x.detach(), rows, out))

        observers.append(observe)
        layer.delta_observers.append(observe)
    grad_flags = [layer.lora_A.requires_grad for layer in layers]
    try:
        for layer in layers:  # the adapter outputs must be on the graph to the logits
            layer.lora_A.requires_grad_(True)
        with torch.enable_grad(), model.sampling("mean"):
            logits = class_logits()
            weighted = _contrast_gradients(logits, layers, calls)
    finally:
        for layer, observe, flag in zip(layers, observers, grad_flags, strict=True):
            layer.delta_observers.remove(observe)
            layer.lora_A.requires_grad_(flag)
    return logits.detach().double(), layers, weighted


def _contrast_gradients(
    logits: torch.Tensor, layers: list[BLoBLayer], calls: list[Call]
) -> list[list[torch.Tensor]]:
    finite = torch.isfinite(logits)
    if not bool(finite[:, 0].all()):
        raise ValueError("predict_sample_mode=linear needs every example's first class")
    batch, classes = logits.shape
    outs = [out for _, _, _, out in calls]
    weighted = []
    for k in range(1, classes):
        contrast = torch.where(finite[:, k], logits[:, k] - logits[:, 0], 0.0)
        grads = torch.autograd.grad(
            contrast.sum(), outs, retain_graph=k < classes - 1, allow_unused=True
        )
        weighted.append(_weighted_gradients(layers, calls, grads, batch))
    return weighted


def _weighted_gradients(
    layers: list[BLoBLayer],
    calls: list[Call],
    grads: tuple[torch.Tensor | None, ...],
    batch: int,
) -> list[torch.Tensor]:
    """Per layer (in `layers` order), each example's gradient of the contrast with respect
    to A, times Omega: the contrast's variance is the squared norm summed over layers. A
    layer called more than once sums its calls' gradients (one A serves every call)."""
    totals: dict[nn.Module, torch.Tensor] = {}
    for (layer, x, rows, _), g in zip(calls, grads, strict=True):
        if g is None:
            continue
        b = layer.lora_B if rows is None else layer.lora_B[rows]
        u = layer.scaling * g.double() @ b.detach().double()  # (..., r): gradient at A x
        u, xs = _per_example(u), _per_example(x.double())
        if u.shape[0] != batch:
            raise ValueError(
                "predict_sample_mode=linear needs one sequence per example (the class "
                f"logits have {batch} rows, an adapter saw {u.shape[0]} sequences)"
            )
        grad_a = torch.einsum("btr,btd->brd", u, xs)
        totals[layer] = totals.get(layer, 0) + grad_a
    out = []
    for layer in layers:
        std = layer.std_A.detach().double()
        grad_a = totals.get(
            layer, torch.zeros(batch, *std.shape, dtype=std.dtype, device=std.device)
        )
        out.append((grad_a * std).reshape(batch, -1))
    return out
