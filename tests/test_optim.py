import torch
from tiny_models import randomize_adapters, tiny_llama

from blob_lora import AdapterOptimizer, OptimConfig, get_blob_model


def _setup(scheme, kind="blob"):
    blob = get_blob_model(tiny_llama(), kind=kind, target_modules=["q_proj", "v_proj"])
    randomize_adapters(blob)
    blob.train()
    opt = AdapterOptimizer(
        blob, OptimConfig(scheme=scheme, lr=1e-2, kl_lr=0.05, total_steps=10, warmup_steps=0)
    )
    return blob, opt


def _nll_grads(blob, ids):
    torch.manual_seed(5)
    loss = blob(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss


def test_authors_scheme_moves_g_only_by_sgd_on_nll_plus_kl():
    blob, opt = _setup("authors")
    ids = torch.randint(3, 64, (2, 6))
    _nll_grads(blob, ids)
    layer = next(iter(blob.adapters().values()))
    g_before = layer.lora_A_g.detach().clone()
    g_nll_grad = layer.lora_A_g.grad.clone()
    w = 0.3
    kl_grad = torch.autograd.grad((blob.kl() * w).float(), layer.lora_A_g)[0]
    opt.step(kl_weight=w)
    expected = g_before - 0.05 * (g_nll_grad + kl_grad)
    assert torch.allclose(layer.lora_A_g.detach(), expected, atol=1e-6)
    assert all(p is not layer.lora_A_g for g in opt.main.param_groups for p in g["params"])


def test_authors_scheme_means_get_adamw_then_kl_sgd():
    blob, opt = _setup("authors")
    ids = torch.randint(3, 64, (2, 6))
    _nll_grads(blob, ids)
    layer = next(iter(blob.adapters().values()))
    m_before = layer.lora_A.detach().clone()
    grad = layer.lora_A.grad.clone()
    opt.step(kl_weight=0.0)
    # first AdamW step moves every entry by lr * sign(grad) (bias-corrected, no decay)
    step = m_before - layer.lora_A.detach()
    nonzero = grad.abs() > 1e-4
    assert torch.allclose(step[nonzero], 1e-2 * grad.sign()[nonzero], rtol=1e-3)


def test_elbo_scheme_is_one_adamw_on_everything():
    blob, opt = _setup("elbo")
    assert opt.kl_opt is None
    n = sum(len(g["params"]) for g in opt.main.param_groups)
    assert n == len(list(blob.named_trainable_parameters()))
    ids = torch.randint(3, 64, (2, 6))
    _nll_grads(blob, ids)
    kl_before = blob.kl().item()
    for _ in range(5):
        opt.step(kl_weight=1.0)
        _nll_grads(blob, ids)
    assert blob.kl().item() < kl_before


def test_state_round_trip():
    blob, opt = _setup("authors")
    ids = torch.randint(3, 64, (2, 6))
    _nll_grads(blob, ids)
    opt.step(0.1)
    state = opt.state_dict()
    blob2, opt2 = _setup("authors")
    opt2.load_state_dict(state)
    assert opt2.schedulers[0].last_epoch == 1


def _train_mle(weight_decay: float, lr: float, steps: int = 5):
    torch.manual_seed(0)
    blob = get_blob_model(tiny_llama(), kind="lora", target_modules=["q_proj", "v_proj"])
    randomize_adapters(blob)
    blob.train()
    opt = AdapterOptimizer(
        blob, OptimConfig(lr=lr, weight_decay=weight_decay, total_steps=steps, warmup_steps=0)
    )
    ids = torch.randint(3, 64, (2, 6), generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        opt.zero_grad()
        blob(input_ids=ids, labels=ids).loss.backward()
        opt.step(kl_weight=0.0)
    return torch.cat([p.detach().flatten() for _, p in blob.named_trainable_parameters()])


def test_map_decay_below_fp32_resolution_trains_bit_for_bit_as_mle():
    """MAP's weight_decay 1e-5 at lr 1e-3: 1 - lr*wd rounds to 1 in fp32, so AdamW's
    decoupled decay is a no-op and the run equals weight_decay=0 exactly; at lr*wd above
    half an ulp the decay acts. decay_is_lost must tell the two apart."""
    from blob_lora.optim import decay_is_lost

    assert decay_is_lost(1e-3, 1e-5) and decay_is_lost(1e-4, 1e-5)
    assert torch.equal(_train_mle(1e-5, 1e-3), _train_mle(0.0, 1e-3))
    assert not decay_is_lost(1e-2, 1e-4) and not decay_is_lost(1e-3, 0.0)
    assert not torch.equal(_train_mle(1e-4, 1e-2), _train_mle(0.0, 1e-2))


def test_kl_off_the_means_moves_g_by_the_kl_and_leaves_the_means_to_the_nll():
    """kl_on_means=False: a pure KL step (no NLL gradient) moves G exactly as before and
    the means not at all; with the default it decays the means toward the prior mean."""
    for on_means in (True, False):
        blob = get_blob_model(tiny_llama(), kind="blob", target_modules=["q_proj", "v_proj"])
        randomize_adapters(blob)
        config = OptimConfig(lr=1e-2, kl_lr=0.05, total_steps=10, kl_on_means=on_means)
        opt = AdapterOptimizer(blob, config)
        layer = next(iter(blob.adapters().values()))
        m_before, g_before = layer.lora_A.detach().clone(), layer.lora_A_g.detach().clone()
        g_kl = torch.autograd.grad(blob.kl().float(), layer.lora_A_g)[0]
        m_kl = torch.autograd.grad(blob.kl().float(), layer.lora_A)[0]
        opt.step(kl_weight=1.0)
        assert torch.allclose(layer.lora_A_g.detach(), g_before - 0.05 * g_kl, atol=1e-6)
        moved = layer.lora_A.detach() - m_before
        if on_means:
            assert torch.allclose(moved, -0.05 * m_kl, atol=1e-6) and moved.abs().max() > 0
        else:
            assert torch.equal(moved, torch.zeros_like(moved))
