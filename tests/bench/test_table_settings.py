"""The report's check that every run of a tier shares its rows and budget, read from the
records' stored run configs."""

import json

from bench import table_plan
from bench.table_settings import settings_lines


def _record(root, name, **config):
    path = root / "records" / "oc" / "mrpc" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    base = {"model": "minilm", "dataset": "mrpc", "eval_limit": 1000, "eval_subset_seed": 0}
    path.write_text(json.dumps({"rows": [], "run_config": base | config}))


def test_every_run_sharing_rows_and_budget_is_said_once_and_a_difference_is_named(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(table_plan, "RECORDS", tmp_path / "records")
    monkeypatch.setattr(table_plan, "RUNS", tmp_path / "runs")
    source = "/another/checkout/runs/paper-table/oc/mrpc/mle-s0"  # recorded elsewhere
    _record(tmp_path, "mle-s0", max_steps=1000)
    _record(tmp_path, "ts-s0", max_steps=0, init_from=source)  # its budget: its source's
    relabelled = tmp_path / "records" / "oc" / "mrpc" / "map-s0.json"
    relabelled.write_text(json.dumps({"rows": [], "same_as": "mle"}))  # no config: not missed
    (line,) = [x for x in settings_lines("oc") if x]
    assert "2 records" in line and "mrpc: 1000 steps, eval_limit 1000, eval_subset_seed 0" in line
    assert "no stored config" not in line
    # a run scored on another subset, and one with no config, are both named
    _record(tmp_path, "blob-s0", max_steps=1000, eval_subset_seed=1)
    (tmp_path / "records" / "oc" / "mrpc" / "bbb-s0.json").write_text('{"rows": []}')
    (line,) = [x for x in settings_lines("oc") if x]
    assert line.startswith("**Settings differ between runs:** mrpc eval_subset_seed: 1 (blob-s0)")
    assert "0 (mle-s0, ts-s0)" in line and "no stored config: mrpc/bbb-s0" in line
