import math

import pytest
import torch
from torch import nn

from blob_lora import AdapterOptimizer, KLSchedule, OptimConfig, get_blob_model
from blob_lora.kl_plan import (
    AUTHORS,
    MAX_STEP,
    TAIL,
    clock,
    init_sigma_mean,
    lr_factor,
    plan_authors,
    plan_budget,
    reference_clock,
    reference_max_step,
    reference_prediction,
    simulate_kl_only,
)


def test_the_authors_runs_had_the_cycles_and_clock_their_scripts_imply():
    # RoBERTa on RTE: 4 GPUs x 32, M = 16, 1250 optimizer steps -> 78 cycles
    rte_clock, rte_cycles = reference_clock(AUTHORS["encoder"], 2490)
    assert AUTHORS["encoder"].cycle_length(2490) == 16 and rte_cycles == 78
    # Llama on WG-S: 2 GPUs x 4, M = 158, 2500 optimizer steps -> 15 whole cycles
    wgs_clock, wgs_cycles = reference_clock(AUTHORS["causal-lm"], 640)
    assert AUTHORS["causal-lm"].cycle_length(640) == 158 and wgs_cycles == 15
    # about half a cycle's weight per cycle at the mean LR factor (~0.5), times kl_lr
    assert rte_clock == pytest.approx(0.002 * 78 * 0.5, rel=0.05)
    assert wgs_clock == pytest.approx(0.01 * 15.8 * 0.5, rel=0.05)
    for sigma_final in (
        0.2 * math.tanh(4 * c / 0.2 + math.atanh(init_sigma_mean(0.05) / 0.2))
        for c in (rte_clock, wgs_clock)
    ):
        assert 0.12 < sigma_final < 0.2  # near the prior, as the authors' runs ended


def test_init_sigma_mean_is_the_mean_of_g_squared():
    g = torch.empty(200_000).uniform_(0.05 / math.sqrt(2), 0.05)
    assert init_sigma_mean(0.05) == pytest.approx(float((g * g).mean()), rel=0.01)


def _kl_only_run(schedule, kl_lr, steps, warmup, sigma0):
    """The real optimizer on a BLoB layer whose NLL gradient is zero."""
    model = nn.Module()
    model.q_proj = nn.Linear(16, 8)
    blob = get_blob_model(model, kind="blob", r=4, target_modules=["q_proj"])
    layer = blob.adapters()["q_proj"]
    with torch.no_grad():
        layer.lora_A_g.fill_(math.sqrt(sigma0))
        layer.lora_A.fill_(0.05)
    opt = AdapterOptimizer(
        blob,
        OptimConfig(scheme="authors", lr=1e-3, kl_lr=kl_lr, warmup_steps=warmup, total_steps=steps),
    )
    for t in range(steps):
        opt.step(kl_weight=schedule.weight(t))
    return float(layer.std_A.detach().mean()), float(layer.lora_A.detach().mean()) / 0.05


def test_the_kl_only_simulation_is_what_the_optimizer_does():
    schedule = KLSchedule("blob", n_train=1000, global_batch=8, cycle=12, cycles=6)
    sigma0 = init_sigma_mean(0.05)
    sigma, shrink = _kl_only_run(schedule, 0.004, 100, 6, sigma0)
    sim_sigma, sim_shrink = simulate_kl_only(schedule, 0.004, 100, 6, 0.2, sigma0)
    assert sim_sigma == pytest.approx(sigma, rel=1e-4)
    assert sim_shrink == pytest.approx(shrink, rel=1e-4)
    assert sigma > 5 * sigma0  # it moved


def test_gamma_sets_only_the_cycle_and_a_long_cycle_leaves_sigma_at_init():
    """The follow-up study's gamma axis on DialogSum (12460 dialogues), in the authors' Llama
    run: gamma 4 gives a cycle longer than the run (sigma never moves: the 'collapse'),
    gamma 8 a few cycles, gamma 12 many and a sigma near the prior (tanh closed form)."""
    from dataclasses import replace

    sigma0 = init_sigma_mean(0.05)
    by_gamma = {}
    for gamma in (4.0, 8.0, 12.0):
        ref = replace(AUTHORS["causal-lm"], gamma=gamma)
        c, cycles = reference_clock(ref, 12460)
        sigma, shrink = reference_prediction(ref, 12460, 0.2, sigma0)
        by_gamma[gamma] = (ref.cycle_length(12460), cycles, c, sigma, shrink)
        closed = 0.2 * math.tanh(4 * c / 0.2 + math.atanh(sigma0 / 0.2))
        assert sigma == pytest.approx(closed, rel=0.1)  # the first steps near init are not small
    m4, cycles4, clock4, sigma4, shrink4 = by_gamma[4.0]
    assert m4 > AUTHORS["causal-lm"].optimizer_steps and cycles4 == 0
    assert clock4 < 1e-12 and sigma4 == pytest.approx(sigma0) and shrink4 == pytest.approx(1.0)
    assert by_gamma[8.0][1] < by_gamma[12.0][1]
    assert 2 * sigma0 < by_gamma[8.0][3] < by_gamma[12.0][3] < 0.2


def test_the_tanh_closed_form_holds_when_the_steps_are_small():
    schedule = KLSchedule("blob", n_train=1000, global_batch=8, cycle=10)
    kl_lr, steps = 0.0005, 2000
    sigma0 = init_sigma_mean(0.05)
    c = clock(schedule, kl_lr, steps, 120)
    closed = 0.2 * math.tanh(4 * c / 0.2 + math.atanh(sigma0 / 0.2))
    simulated, _ = simulate_kl_only(schedule, kl_lr, steps, 120, 0.2, sigma0)
    assert simulated == pytest.approx(closed, rel=0.05)


@pytest.mark.parametrize(
    ("steps", "n_train", "capped"),
    [(150, 2934, True), (600, 2934, False), (1000, 640, False), (40, 100, True)],
)
def test_the_budget_plan_gives_the_authors_clock_with_no_cycle_in_the_tail(steps, n_train, capped):
    family = "causal-lm" if n_train == 640 else "encoder"
    warmup = int(0.06 * steps)
    sigma0 = init_sigma_mean(0.05)
    plan = plan_budget(n_train, 16, steps, warmup, family, 0.2, sigma0)
    assert plan.capped == capped
    target, ref_cycles = reference_clock(AUTHORS[family], n_train)
    assert plan.target_clock == pytest.approx(target)
    assert clock(plan.schedule, plan.kl_lr, steps, warmup) == pytest.approx(plan.clock, rel=1e-9)
    largest = max(
        plan.kl_lr * plan.schedule.weight(t) * lr_factor(t, steps, warmup) for t in range(steps)
    )
    cap = MAX_STEP * reference_max_step(AUTHORS[family], n_train)
    if plan.capped:  # too short for the whole clock without oversized KL steps
        assert plan.clock < target and largest == pytest.approx(cap)
    else:
        assert plan.clock == pytest.approx(target) and largest <= cap
    m, k = plan.schedule.cycle_length, plan.schedule.cycles
    assert 1 <= k <= ref_cycles
    ends = [c * m - 1 for c in range(1, k + 1)]
    assert all(lr_factor(t, steps, warmup) >= TAIL for t in ends[1:] if t >= warmup)
    assert all(plan.schedule.weight(t) == 0.0 for t in range(k * m, steps))
    # what it predicts is what the optimizer does (KL alone)
    sigma, _ = _kl_only_run(plan.schedule, plan.kl_lr, steps, warmup, sigma0)
    assert plan.predicted_sigma == pytest.approx(sigma, rel=1e-3)
    assert plan.predicted_sigma > 10 * sigma0
    assert "predicted sigma" in plan.describe()


def test_the_clock_scale_scales_kl_lr_and_the_authors_plan_reports_its_small_clock():
    sigma0 = init_sigma_mean(0.05)
    one = plan_budget(2934, 16, 600, 36, "encoder", 0.2, sigma0)
    half = plan_budget(2934, 16, 600, 36, "encoder", 0.2, sigma0, clock_scale=0.5)
    assert not one.capped and half.kl_lr == pytest.approx(one.kl_lr / 2)
    assert half.predicted_sigma < one.predicted_sigma
    authors = plan_authors(KLSchedule("blob", 2934, 16, cycle=75), 0.002, 150, 9, 0.2, sigma0)
    # the measurement: 150 steps, kl_cycle 75 -> sigma 0.0018 to about 0.0066
    assert authors.predicted_sigma == pytest.approx(0.0066, abs=0.001)
    assert authors.clock < one.clock / 20


def test_a_stopped_schedule_has_no_weight_after_its_cycles():
    s = KLSchedule("blob", n_train=100, global_batch=4, cycle=5, cycles=2)
    weights = [s.weight(t) for t in range(15)]
    assert weights[:5] == weights[5:10] and sum(weights[10:]) == 0.0
    with pytest.raises(Exception, match="cycles"):
        KLSchedule("blob", n_train=100, global_batch=4, cycle=5, cycles=0)


def test_under_the_elbo_scheme_the_plan_says_kl_lr_is_unused_and_predicts_no_sigma():
    from dataclasses import replace

    from blob_lora.run.files import plan_dict

    plan = plan_budget(2934, 16, 600, 36, "encoder", 0.2, init_sigma_mean(0.05))
    assert plan.predicts_sigma and "predicted sigma" in plan.describe()
    elbo = replace(plan, optim_scheme="elbo")
    text = elbo.describe()
    assert not elbo.predicts_sigma
    assert "kl_lr is unused" in text and "predicted sigma" not in text
    saved = plan_dict(elbo)
    assert saved["predicted_sigma"] is None and saved["kl_lr_used"] is False
    assert plan_dict(plan)["predicted_sigma"] == pytest.approx(plan.predicted_sigma)


def test_a_scaled_plan_prints_the_authors_clock_and_the_scale():
    sigma0 = init_sigma_mean(0.05)
    plan = plan_budget(2934, 16, 600, 36, "encoder", 0.2, sigma0, clock_scale=0.2)
    authors, _ = reference_clock(AUTHORS["encoder"], 2934)
    assert plan.target_clock == pytest.approx(0.2 * authors)
    text = plan.describe()
    assert f"target 0.2 x the authors' clock {authors:.4f}" in text
    full = plan_budget(2934, 16, 600, 36, "encoder", 0.2, sigma0).describe()
    assert f"target the authors' clock {authors:.4f}" in full
