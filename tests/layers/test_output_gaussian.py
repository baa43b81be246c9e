"""The closed-form head: a BLoB layer's output given its input is exactly Gaussian over A's
posterior; checked against 100k Monte Carlo draws of A, and the softmax average over those
Gaussian logits against the same draws pushed through the layer."""

import pytest
import torch
from torch import nn

from blob_lora.config import AdapterConfig
from blob_lora.layers import BBBLayer, BLoBLayer, LoRALayer
from blob_lora.predictive import gaussian_softmax_mean


def _layer(kind=BLoBLayer, out=6, inp=12, r=4, seed=0):
    torch.manual_seed(seed)
    base = nn.Linear(inp, out)
    layer = kind(base, AdapterConfig(r=r, alpha=8))
    with torch.no_grad():
        layer.lora_B.normal_(0, 0.5)
        if hasattr(layer, "lora_A_g"):
            layer.lora_A_g.uniform_(0.3, 0.7)  # sigma 0.09-0.49: far from the init
    return layer.eval()


def _sampled_outputs(layer, x, rows, n=100_000, seed=1):
    """Brute force: n draws of A ~ N(M, Omega^2), the layer's rows for each."""
    gen = torch.Generator().manual_seed(seed)
    m, s = layer.lora_A.double(), layer.std_A.double()
    a = m + s * torch.randn((n, *m.shape), generator=gen, dtype=torch.float64)
    h = torch.einsum("nri,bi->nbr", a, x.double())
    delta = layer.scaling * h @ layer.lora_B.double()[rows].T
    base = nn.functional.linear(
        x.double(), layer.base.weight.double()[rows], layer.base.bias.double()[rows]
    )
    return base + delta  # (n, B, C)


def test_mean_and_covariance_match_100k_draws_of_a():
    layer = _layer()
    x = torch.randn(3, 12, generator=torch.Generator().manual_seed(2))
    rows = torch.tensor([1, 4, 5])
    mean, cov = layer.output_gaussian(x, rows)
    z = _sampled_outputs(layer, x, rows)
    centred = z - z.mean(0)
    mc_cov = torch.einsum("nbc,nbd->bcd", centred, centred) / (z.shape[0] - 1)
    # within 5 Monte Carlo standard errors: sd / sqrt(n) for the mean, and for each
    # covariance entry sqrt((var_c var_d + cov_cd^2) / n)
    n = z.shape[0]
    var = cov.diagonal(dim1=-2, dim2=-1)
    assert ((mean - z.mean(0)).abs() <= 5 * (var / n).sqrt()).all()
    se = ((var[..., :, None] * var[..., None, :] + cov**2) / n).sqrt()
    assert ((cov - mc_cov).abs() <= 5 * se).all()
    assert float(var.min()) > 0.1  # a posterior far from its init: the test has teeth
    # the layer's own pass at the posterior mean (eval mode: N=0) is the Gaussian's mean
    assert layer.noise.resolve(layer.training) == "mean"
    with torch.no_grad():
        torch.testing.assert_close(mean.float(), layer.forward_rows(x, rows), atol=1e-5, rtol=0)


def test_the_softmax_average_over_the_gaussian_matches_the_layer_sampled():
    layer = _layer(out=3)
    x = torch.randn(4, 12, generator=torch.Generator().manual_seed(3))
    rows = torch.arange(3)
    mean, cov = layer.output_gaussian(x, rows)
    closed = gaussian_softmax_mean(
        mean, cov, draws=200_000, generator=torch.Generator().manual_seed(4)
    )
    brute = torch.softmax(_sampled_outputs(layer, x, rows, n=200_000), -1).mean(0)
    torch.testing.assert_close(closed, brute, atol=4e-3, rtol=0)
    # a transform acts on each draw (soft-capping), not on the mean
    capped = gaussian_softmax_mean(
        mean,
        cov,
        draws=200_000,
        transform=lambda z: torch.tanh(z / 2) * 2,
        generator=torch.Generator().manual_seed(4),
    )
    brute_capped = torch.softmax(
        torch.tanh(_sampled_outputs(layer, x, rows, n=200_000) / 2) * 2, -1
    ).mean(0)
    torch.testing.assert_close(capped, brute_capped, atol=4e-3, rtol=0)


def test_no_posterior_noise_gives_the_mean_softmax_and_bbb_has_no_closed_form():
    layer = _layer()
    with torch.no_grad():
        layer.lora_A_g.zero_()
    x = torch.randn(2, 12)
    mean, cov = layer.output_gaussian(x)
    assert float(cov.abs().max()) == 0.0
    torch.testing.assert_close(gaussian_softmax_mean(mean, cov, draws=16), torch.softmax(mean, -1))
    with pytest.raises(NotImplementedError, match="not Gaussian"):
        _layer(BBBLayer).output_gaussian(x)
    assert not hasattr(_layer(LoRALayer), "output_gaussian")
