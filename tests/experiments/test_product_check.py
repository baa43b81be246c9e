"""The product check is the table's BLoB run with exactly the two changed defaults."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
sys.path.insert(0, str(ROOT / "bench"))
import product_check  # noqa: E402
import table_plan  # noqa: E402

from blob_lora.run_config import load_run_config  # noqa: E402


def _config(cmd: list[str]) -> dict:
    sets = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--set"]
    return load_run_config(None, sets).to_dict()


def test_only_the_clock_and_the_prediction_noise_differ_from_the_tables_blob():
    for task in ("trec", "mrpc"):
        ours = _config(product_check.command(task, 1))
        table = _config(table_plan.command(table_plan.Run("minilm-regime", task, "blob", 1)))
        changed = {k for k in set(ours) | set(table) if ours.get(k) != table.get(k)}
        assert changed == {"adapter", "kl_clock_scale", "output_dir", "protocol"}
        assert (ours["kl_clock_scale"], table["kl_clock_scale"]) == (0.2, 0.1)
        a, b = dict(ours["adapter"]), dict(table["adapter"])
        assert (a.pop("predict_sample_mode"), b.pop("predict_sample_mode")) == ("sequence", None)
        assert a == b  # the training noise and the rest of the adapter are the table's
