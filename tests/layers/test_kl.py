import math

import torch

from blob_lora.layers import gaussian_kl


def test_closed_form_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    mean = 0.3 * torch.randn(4, 5, generator=gen, dtype=torch.float64)
    std = 0.05 + 0.3 * torch.rand(4, 5, generator=gen, dtype=torch.float64)
    beta = 0.2
    n = 200_000
    w = mean + std * torch.randn(n, 4, 5, generator=gen, dtype=torch.float64)
    log_q = torch.distributions.Normal(mean, std).log_prob(w).sum((1, 2))
    log_p = torch.distributions.Normal(0.0, beta).log_prob(w).sum((1, 2))
    mc = (log_q - log_p).mean()
    se = (log_q - log_p).std() / math.sqrt(n)
    closed = gaussian_kl(mean, std, beta)
    assert abs(closed - mc) < 4 * se
    # and the torch.distributions closed form agrees exactly
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, std),
        torch.distributions.Normal(
            torch.tensor(0.0, dtype=torch.float64), torch.tensor(beta, dtype=torch.float64)
        ),
    ).sum()
    assert torch.allclose(closed, ref, rtol=1e-10)


def test_zero_when_posterior_equals_prior():
    mean = torch.zeros(3, 7)
    std = torch.full((3, 7), 0.2)
    assert gaussian_kl(mean, std, 0.2).abs() < 1e-12
    assert gaussian_kl(mean + 0.01, std, 0.2) > 0


def test_accumulates_in_float64():
    kl = gaussian_kl(torch.zeros(2, 2, dtype=torch.float32), torch.ones(2, 2) * 0.1, 0.2)
    assert kl.dtype == torch.float64


def test_gradients_match_finite_differences():
    gen = torch.Generator().manual_seed(1)
    mean = torch.randn(3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    g = (0.2 + torch.rand(3, 4, generator=gen, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda m, gg: gaussian_kl(m, gg * gg, 0.2), (mean, g))
