"""A method is one file plus one registry line: everything else reads the registry."""

from __future__ import annotations

import json

import pytest

from blob_lora import ConfigError
from blob_lora.methods import METHODS, Method, sample_label

TOY = Method(
    name="toy",
    adapter_kind="blob",
    default_eval_samples=(0, 3),
    table_samples=(0, 3, 5),
    sampled=True,
    post_hoc_of="blob",
    sharding_refusal="a toy cannot be sharded",
    cost="a toy method for the registry test",
)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(METHODS, "toy", TOY)
    return TOY


@pytest.fixture
def tier(tmp_path, monkeypatch):
    from bench import table_plan, table_report

    cfg = tmp_path / "tier.yaml"
    cfg.write_text(
        "model_label: Tiny\n"
        "settings: {model: minilm, max_steps: 7, batch_size: 4, adapter: {r: 4, alpha: 4}}\n"
        "tasks:\n  rte: {dataset: rte}\n"
    )
    monkeypatch.setattr(table_plan, "TIERS", {"tiny": cfg})
    monkeypatch.setattr(table_plan, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(table_plan, "RECORDS", tmp_path / "records")
    monkeypatch.setattr(table_report, "RESULTS", tmp_path / "results")
    return tmp_path


def test_blob_methods_lists_a_newly_registered_method(toy, capsys):
    from blob_lora.cli import main

    assert main(["methods"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("toy "))
    assert "N=0, 3" in line and "a toy method for the registry test" in line


def test_the_run_config_takes_it_and_its_own_refusals(toy):
    from blob_lora.run.config import RunConfig

    assert RunConfig.from_dict({"method": "toy"}).method == "toy"
    with pytest.raises(ConfigError, match="a toy cannot be sharded"):
        RunConfig.from_dict({"method": "toy", "sharding": "fsdp"})


def test_the_generation_check_and_the_paper_preset_ask_the_method(toy, monkeypatch):
    from blob_lora.generation.checks import generation_methods
    from blob_lora.run.protocol import apply_protocol

    assert "toy" not in generation_methods()
    monkeypatch.setitem(METHODS, "toy", Method(name="toy", generates=True))
    assert "toy" in generation_methods()
    monkeypatch.setitem(METHODS, "toy", Method(name="toy", paper_options={"x": 1}))
    assert apply_protocol({"protocol": "paper", "method": "toy"})["method_options"] == {"x": 1}


def test_the_table_plans_runs_it_from_its_source_and_reports_it(toy, tier):
    from bench import table_plan, table_report

    runs = table_plan.plan(["tiny"], [0], list(table_plan.methods()), None)
    toy_run = next(r for r in runs if r.method == "toy")
    assert table_plan.source_run(toy_run) == table_plan.Run("tiny", "rte", "blob", 0)
    cmd = table_plan.command(toy_run)
    settings = dict(cmd[i + 1].split("=", 1) for i, a in enumerate(cmd) if a == "--set")
    assert json.loads(settings["eval_samples"]) == [0, 3, 5]
    assert json.loads(settings["max_steps"]) == 0  # post-hoc: no training of its own
    assert settings["init_from"] == json.dumps(str(table_plan.Run("tiny", "rte", "blob", 0).out))
    assert ["toy (N=0)", "toy (N=3)", "toy (N=5)"] == [
        label for label in table_report.labels() if label.startswith("toy")
    ]
    assert "toy" in table_report._blob_family()  # fitted on BLoB: ranked as BLoB's own
    assert sample_label("toy", 0) == "toy (N=0)"
