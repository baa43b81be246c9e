"""A finished run's cost, kept beside it as machine_time.json: the table's runs and the
dev studies' runs write and read it the same way, so their machine-hours add up."""

from __future__ import annotations

import json
import os
from pathlib import Path

from blob_lora.atomic import write_text_atomic

MACHINE_TIME = "machine_time.json"


def write_machine_time(out: Path, wall_s: float, threads: int, **extra) -> None:
    """Keep the run's wall seconds (every start, see `table_run.timed_run`) and its threads."""
    cost = {"wall_s": round(wall_s, 1), **extra, "threads": threads, "cores": os.cpu_count() or 1}
    write_text_atomic(out / MACHINE_TIME, json.dumps(cost) + "\n")


def machine_seconds(path: Path) -> float | None:
    """Seconds of the whole machine: wall time x the run's threads / the cores (None where
    the run was not timed). Counting threads rather than runs at a time keeps the figure
    right when two commands run side by side, one core each."""
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    cores = info.get("cores") or os.cpu_count() or 1
    return info["wall_s"] * min(info["threads"], cores) / cores
