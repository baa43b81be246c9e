"""The `paper` preset: each of its points against a small reference computation."""

import math

import pytest
import torch
from tiny_models import randomize_adapters, tiny_bert, tiny_llama
from torch import nn

from blob_lora import AdapterOptimizer, ConfigError, OptimConfig, get_blob_model
from blob_lora.kl_plan import lr_factor
from blob_lora.methods import get_method
from blob_lora.methods.ens import EnsembleState
from blob_lora.methods.tfb import authors_bisection
from blob_lora.run.config_file import load_run_config


def test_the_paper_preset_sets_every_point_and_refuses_conflicts():
    cfg = load_run_config(None, ["protocol=paper", "method=ens"])
    assert cfg.adapter.sample_mode == "flipout" and cfg.head == "lora"
    assert cfg.adam_eps == 1e-6 and cfg.lr_schedule_per_process
    assert cfg.method_options == {"combine": "logits", "same_data": True}
    for method, key in (("mcd", "scope"), ("tfb", "bisection"), ("la", "prior_fit")):
        options = load_run_config(None, ["protocol=paper", f"method={method}"]).method_options
        assert key in options
        get_method(method, options)  # valid options of that method
    # the user's other options stay; a conflicting one is an error, whichever way round
    la = load_run_config(None, ["protocol=paper", "method=la", "method_options.fit_on=anchor"])
    assert la.method_options["fit_on"] == "anchor" and la.method_options["link_samples"] == 100_000
    bad_ones = (
        "head=train",
        "adapter.sample_mode=sequence",
        "adapter.predict_sample_mode=sequence",
    )
    for bad in (*bad_ones, "adam_eps=1e-8"):
        with pytest.raises(ConfigError, match="conflicts with protocol=paper"):
            load_run_config(None, ["protocol=paper", bad])
    with pytest.raises(
        ConfigError, match="protocol: Input should be 'default' or 'paper'; got 'theirs'"
    ):
        load_run_config(None, ["protocol=theirs"])
    assert load_run_config(None, []).adapter.sample_mode == "flipout"  # measured the better


def _members_model():
    model = nn.Module()
    model.q_proj = nn.Linear(4, 3)
    blob = get_blob_model(model, kind="lora", r=2, target_modules=["q_proj"])
    randomize_adapters(blob)
    states = []
    for k in range(3):
        torch.manual_seed(k)
        states.append({n: torch.randn_like(p) for n, p in blob.named_trainable_parameters()})
    blob.method_state = EnsembleState(states)
    return blob


def test_the_ensemble_averages_logits_or_probabilities():
    blob = _members_model()
    x = torch.randn(5, 4)
    logits = []
    for state in blob.method_state.members:
        for n, p in blob.named_trainable_parameters():
            p.data.copy_(state[n])
        with torch.no_grad():
            logits.append(blob.model.q_proj(x))
    stacked = torch.stack(logits)
    theirs = get_method("ens", {"combine": "logits"})
    ours = get_method("ens")
    p_logits, samples = theirs.predict(blob, lambda: blob.model.q_proj(x), 0)
    p_probs, _ = ours.predict(blob, lambda: blob.model.q_proj(x), 0)
    assert torch.allclose(p_logits, torch.softmax(stacked.mean(0), -1), atol=1e-6)
    assert torch.allclose(p_probs, torch.softmax(stacked, -1).mean(0), atol=1e-6)
    assert torch.allclose(samples, torch.softmax(stacked, -1), atol=1e-6)
    assert not torch.allclose(p_logits, p_probs, atol=1e-4)
    # same_data: every member has the run's data order, its own init
    assert theirs.member_seeds(3, 0) == (3, 3) and ours.member_seeds(3, 0) == (3, 3)
    assert get_method("ens", {"same_data": True}).member_seeds(3, 2) == (3002, 3)
    assert ours.member_seeds(3, 2) == (3002, 3002)


def test_mc_dropout_scope_all_switches_on_the_base_models_dropout():
    bert = tiny_bert()
    bert.config.hidden_dropout_prob = 0.1
    blob = get_blob_model(bert, kind="lora", r=2, target_modules=["query", "value"], dropout=0.0)
    blob.eval()
    ids = torch.randint(3, 60, (4, 7))
    logits = lambda: blob(input_ids=ids).logits  # noqa: E731
    base_drops = [m for m in bert.modules() if isinstance(m, nn.Dropout) and m.p > 0]
    assert base_drops
    adapter_only, _ = get_method("mcd").predict(blob, logits, 4)
    every, samples = get_method("mcd", {"scope": "all"}).predict(blob, logits, 4)
    mean = torch.softmax(logits(), -1)
    assert torch.allclose(adapter_only, mean, atol=1e-6)  # adapter dropout 0: nothing moves
    assert not torch.allclose(samples[0], samples[1])  # the base model's dropout is on
    assert all(not m.training for m in bert.modules())  # and off again afterwards
    with pytest.raises(ConfigError, match="scope"):
        get_method("mcd", {"scope": "some"})


def test_tfb_authors_bisection_returns_the_last_failing_midpoint():
    # reference: their loop by hand for a criterion that fails above beta = 0.006
    def reference(threshold: float) -> float:
        low, high, best = 0.001, 0.015, 0.015
        for _ in range(5):
            mid = (low + high) / 2
            if mid > threshold:
                best, high = mid, mid
            else:
                low = mid
        return best

    for threshold in (0.006, 0.0149, 0.0005, 0.02):
        assert authors_bisection(lambda b, t=threshold: b > t, 0.001, 0.015, 5) == reference(
            threshold
        )
    assert authors_bisection(lambda b: False, 0.001, 0.015, 5) == 0.015  # none failed: the top
    # 0.006: the midpoints 0.008 (fails), 0.0045, 0.00625 (fails), 0.005375, 0.0058125
    assert reference(0.006) == pytest.approx(0.00625)


def test_adam_eps_and_schedulers_stepped_once_per_process():
    blob = get_blob_model(tiny_llama(), kind="blob", target_modules=["q_proj"])
    cfg = OptimConfig(lr=1e-3, total_steps=40, warmup_steps=4, adam_eps=1e-6)
    opt = AdapterOptimizer(blob, cfg)
    assert all(g["eps"] == 1e-6 for g in opt.main.param_groups)
    per_process = AdapterOptimizer(
        blob, OptimConfig(lr=1e-3, total_steps=40, warmup_steps=4, scheduler_steps_per_step=4)
    )
    for step in range(1, 8):
        per_process.step(0.0)
        expected = 1e-3 * lr_factor(4 * step, 40, 4)
        assert per_process.schedulers[0].get_last_lr()[0] == pytest.approx(expected)
    assert math.isclose(per_process.schedulers[0].get_last_lr()[0], 1e-3 * 12 / 36)
