"""Flipout's noise path: the same numbers as the plain expression for a seed, forward and
backward, with the signs kept as booleans instead of two input-sized tensors."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blob_lora.config import AdapterConfig
from blob_lora.layers import BBBLayer, BLoBLayer, NoiseState


def _plain_signs(shape, like):
    """The signs as flipout drew them before: bernoulli_(0.5) in the input's dtype."""
    return torch.empty(shape, dtype=like.dtype).bernoulli_(0.5) * 2 - 1


def _plain_blob_flipout(layer, x):
    """BLoB's flipout low-rank path as it was written before, autograd on the expression."""
    e = layer.std_A * torch.randn(layer.lora_A.shape, dtype=layer.lora_A.dtype)
    sign_in = _plain_signs(tuple(x.shape), x)
    sign_r = _plain_signs((*x.shape[:-1], layer.r), x)
    return F.linear(x, layer.lora_A) + F.linear(x * sign_in, e) * sign_r


@pytest.mark.parametrize("shape", [(16, 96, 384), (3, 7, 5), (1,), (2, 1, 9)])
def test_flips_are_bernoullis_values_and_leave_the_generator_where_it_left_it(shape):
    torch.manual_seed(11)
    before = torch.empty(shape).bernoulli_(0.5)
    after_before = torch.rand(3)
    torch.manual_seed(11)
    flips = NoiseState().flips(shape, torch.empty(0))
    assert flips.dtype == torch.bool
    assert torch.equal(flips.float(), before)
    assert torch.equal(torch.rand(3), after_before)


def _layer(kind=BLoBLayer, seed=0):
    torch.manual_seed(seed)
    layer = kind(nn.Linear(12, 10), AdapterConfig(r=4, sample_mode="flipout"))
    with torch.no_grad():
        layer.lora_B.normal_()
        layer.lora_A_g.uniform_(0.3, 0.6)
    return layer.train()


def _grads(layer, x, out):
    params = [x, *[p for p in layer.parameters() if p.requires_grad]]
    weights = torch.linspace(-1, 1, out.numel()).reshape(out.shape)
    grads = torch.autograd.grad((out.float() * weights).sum(), params, allow_unused=True)
    return [g for g in grads if g is not None]


@pytest.mark.parametrize("autocast", [False, True])
def test_blob_flipout_gives_the_plain_expressions_values_and_gradients(autocast):
    layer = _layer()
    x = torch.randn(3, 5, 12, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        torch.manual_seed(5)
        ours = layer.low_rank(x, "flipout")
        torch.manual_seed(5)
        plain = _plain_blob_flipout(layer, x)
    assert ours.dtype == plain.dtype
    assert torch.equal(ours, plain)  # bit for bit
    tol = {"rtol": 2e-2, "atol": 2e-2} if autocast else {"rtol": 1e-6, "atol": 1e-6}
    for a, b in zip(_grads(layer, x, ours), _grads(layer, x, plain), strict=True):
        torch.testing.assert_close(a, b, **tol)


def test_bbb_flipout_gives_the_plain_expressions_values_and_gradients():
    layer = _layer(BBBLayer)
    with torch.no_grad():
        layer.lora_B_g.uniform_(0.3, 0.6)
    h = torch.randn(2, 4, 4, requires_grad=True)
    torch.manual_seed(9)
    ours = layer.up(h, "flipout")
    torch.manual_seed(9)
    eps = torch.randn(layer.lora_B.shape)
    e = layer.std_B * eps
    plain = F.linear(h, layer.lora_B) + F.linear(
        h * _plain_signs(tuple(h.shape), h), e
    ) * _plain_signs((2, 4, 10), h)
    assert torch.equal(ours, plain)
    for a, b in zip(_grads(layer, h, ours), _grads(layer, h, plain), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def _saved_bytes(fn):
    """Bytes autograd keeps for the backward pass, each storage counted once."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


def test_flipout_keeps_bytes_of_signs_not_input_sized_float_tensors():
    layer = _layer()
    x = torch.randn(8, 64, 12, requires_grad=True)
    size = x.numel() * x.element_size()
    ours, _ = _saved_bytes(lambda: layer.low_rank(x, "flipout"))
    plain, _ = _saved_bytes(lambda: _plain_blob_flipout(layer, x))
    # the plain expression keeps s_in and x * s_in (two input-sized float tensors) beyond
    # what both keep; ours keeps a byte per input element instead
    assert plain - ours >= 2 * size - x.numel() - 1024
