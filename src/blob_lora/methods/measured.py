"""Each method's measured prediction cost, as `blob methods` shows it: the ratios that
bench/inference_cost.py measured on the paper table's runs, shipped with the package
(measured_cost.json, written by that bench) so an installed copy can show them."""

from __future__ import annotations

import json
from pathlib import Path

COSTS_FILE = Path(__file__).with_name("measured_cost.json")


def measured_costs(path: Path | None = None) -> dict[str, list[str]]:
    """{method: ["TASK LABEL: time x / memory x", ...]}, from the bench's last run; empty
    when it has not run (the file is absent)."""
    path = path or COSTS_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    out: dict[str, list[str]] = {}
    for entry in data["tasks"]:
        for label, cell in entry["cells"].items():
            method = label.split(" (N=")[0]
            text = f"{entry['task']} ({entry['model']}) {label}: {cell['time_x']:.2f}x time, "
            text += f"{cell['memory_x']:.2f}x memory"
            out.setdefault(method, []).append(text)
    return out


def costs_note(path: Path | None = None) -> str:
    """Where the measured ratios come from, for the heading of `blob methods`."""
    path = path or COSTS_FILE
    if not path.is_file():
        return ""
    data = json.loads(path.read_text())
    return f"measured per prediction against MLE N=0 on {data['measured_on']} ({data['source']})"
