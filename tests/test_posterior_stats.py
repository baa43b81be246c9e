import pytest
import torch
from tiny_models import tiny_llama

from blob_lora import get_blob_model
from blob_lora.posterior_stats import health_line, health_warnings, plot_sigma, sigma_stats


def test_sigma_statistics_are_the_mean_and_the_median_ratio_over_every_a():
    blob = get_blob_model(tiny_llama(), kind="blob", r=2, target_modules=["q_proj"])
    layers = list(blob.bayesian_layers().values())
    sigmas, ratios = [], []
    with torch.no_grad():
        for i, layer in enumerate(layers):
            mu = torch.linspace(-1.0, 1.0, layer.lora_A.numel()).reshape_as(layer.lora_A) + 0.01
            std = torch.full_like(mu, 0.1 * (i + 1))
            layer.lora_A.copy_(mu)
            layer.lora_A_g.copy_(std.sqrt())
            sigmas.append(std.flatten())
            ratios.append((std / mu.abs()).flatten())
    stats = sigma_stats(blob, per_layer=True)
    assert stats["sigma_mean"] == pytest.approx(float(torch.cat(sigmas).mean()), rel=1e-5)
    assert stats["sigma_ratio_median"] == pytest.approx(float(torch.cat(ratios).median()), rel=1e-5)
    first = next(iter(stats["layers"].values()))
    assert first["sigma_mean"] == pytest.approx(0.1, rel=1e-5)
    assert sigma_stats(get_blob_model(tiny_llama(), kind="lora", target_modules=["q_proj"])) is None


def test_health_warnings_name_each_failure_and_stay_quiet_when_formed():
    formed = {"sigma_mean": 0.05, "sigma_ratio_median": 0.8}
    assert health_warnings(formed, 0.0018, []) == []
    assert "has not formed" in health_warnings({**formed, "sigma_mean": 0.003}, 0.0018, [])[0]
    assert "collapse" in health_warnings({**formed, "sigma_ratio_median": 40.0}, 0.0018, [])[0]
    (line,) = health_warnings(formed, None, [10])
    assert "N=10 predictions equal N=0" in line
    assert "27.8x its init" in health_line(formed, 0.0018)
    assert health_line(formed, 0.0018, (10, 0.00168)).endswith(
        "at N=10 the samples' mean mutual information is 0.0017 nats"
    )


def test_sigma_plot_is_written(tmp_path):
    rows = [
        {"step": s, "sigma_mean": 0.002 * s, "sigma_ratio_median": 0.1 * s} for s in range(1, 6)
    ]
    plot_sigma(rows, tmp_path / "plots" / "sigma.png", "blob")
    assert (tmp_path / "plots" / "sigma.png").stat().st_size > 1000
    plot_sigma([{"step": 1}], tmp_path / "none.png", "mle")  # no posterior: no plot
    assert not (tmp_path / "none.png").exists()
