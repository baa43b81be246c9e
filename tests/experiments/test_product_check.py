"""The product check is the table's BLoB run with exactly the product's changed defaults."""

from pathlib import Path

from bench import table_plan
from blob_lora.run.config_file import load_run_config
from experiments import product_check

ROOT = Path(__file__).resolve().parents[2]


def _config(cmd: list[str]) -> dict:
    sets = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--set"]
    return load_run_config(None, sets).to_dict()


def _changed(tier: str, task: str, seed: int) -> tuple[dict, dict, set[str]]:
    ours = _config(product_check.command(tier, task, seed))
    table = _config(table_plan.command(table_plan.Run(tier, task, "blob", seed)))
    return ours, table, {k for k in set(ours) | set(table) if ours.get(k) != table.get(k)}


def _only_the_prediction_noise_differs(ours: dict, table: dict) -> None:
    a, b = dict(ours["adapter"]), dict(table["adapter"])
    assert (a.pop("predict_sample_mode"), b.pop("predict_sample_mode")) == ("sequence", None)
    assert a == b  # the training noise and the rest of the adapter are the table's


def test_only_the_clock_and_the_prediction_noise_differ_from_the_tables_blob():
    for task in ("trec", "mrpc"):
        ours, table, changed = _changed("minilm-regime", task, 1)
        assert changed == {"adapter", "kl_clock_scale", "output_dir", "protocol"}
        assert (ours["kl_clock_scale"], table["kl_clock_scale"]) == (0.2, 0.1)
        assert ours["kl_plan"] == table["kl_plan"] == "budget"
        _only_the_prediction_noise_differs(ours, table)


def test_on_the_overconfident_tier_the_kl_plan_and_the_prediction_noise_differ():
    ours, table, changed = _changed("gemma-overconfident", "rte-qa", 2)
    assert changed == {"adapter", "kl_plan", "output_dir", "protocol"}
    assert (ours["kl_plan"], table["kl_plan"]) == ("budget", "authors")
    assert ours["kl_clock_scale"] == 0.2 and ours["max_steps"] == table["max_steps"] == 1100
    _only_the_prediction_noise_differs(ours, table)
    # its runs and results do not overwrite the MiniLM check's
    assert product_check.out_dir("gemma-overconfident", "rte-qa", 2) != product_check.out_dir(
        "minilm-regime", "rte-qa", 2
    )
    assert product_check.results_stem("gemma-overconfident").name == (
        "product_check_gemma-overconfident"
    )
