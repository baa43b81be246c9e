"""What a finished table run leaves in the repository: one small JSON record per run (its
result rows, OOD-detection rows and cost) under results/paper_table_runs/. Run folders
live in the git-ignored runs/ and a new session starts without them; the records are what
lets the table continue across sessions instead of training the finished runs again, and
what `report` reads.

MAP whose decay is lost: AdamW multiplies the fp32 adapter by 1 - lr*weight_decay, which
rounds to exactly 1 for MAP's 1e-5 at the table's lr (blob_lora.optim.decay_is_lost), so a
MAP run is the MLE run of the same seed bit for bit (the committed MRPC seed-0 MAP run,
trained in full, matched MLE in every digit). Its record is then the MLE record relabelled,
with `same_as: "mle"`, and no machine time is spent on it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import date

from bench.table_plan import ROOT, Run, load_tier, task_settings
from blob_lora.atomic import write_text_atomic
from blob_lora.machine import cpu_name


def read_record(run: Run) -> dict | None:
    """The run's committed record; None when there is none at the tier's current budget."""
    return json.loads(run.record.read_text()) if run.recorded else None


def write_record(run: Run, rows: list[dict], detection: list[dict], **info) -> None:
    record = {"rows": rows, "detection": detection, **info}
    run.record.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run.record, json.dumps(record, indent=1) + "\n")


def map_is_mle(run: Run) -> bool:
    """A MAP run whose weight decay cannot change an fp32 weight at the tier's peak LR."""
    from blob_lora.methods import METHODS as REGISTRY
    from blob_lora.optim import decay_is_lost
    from blob_lora.run.config import RunConfig

    if run.method != "map":
        return False
    spec = load_tier(run.tier)
    settings = task_settings(spec, run.task)
    lr = float(settings.get("lr", RunConfig.__dataclass_fields__["lr"].default))
    return decay_is_lost(lr, REGISTRY["map"].weight_decay)


def relabel_mle_as_map(run: Run) -> bool:
    """Write the MAP record from the MLE record of the same task and seed; False when that
    record is not there yet."""
    mle = read_record(Run(run.tier, run.task, "mle", run.seed))
    if mle is None:
        return False
    rows = [r | {"method": "map", "machine_s": 0.0, "starts": 0} for r in mle["rows"]]
    detection = [r | {"method": "map"} for r in mle["detection"]]
    record = {"rows": rows, "detection": detection, "machine_s": 0.0, "starts": 0,
              "same_as": "mle"}  # fmt: skip
    if read_record(run) != record:  # unchanged records are not rewritten
        write_record(run, **record)
    return True


def provenance() -> dict:
    """The commit, machine and date a record (or a report) is written at."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {"commit": commit, "machine": machine(), "date": str(date.today())}


def machine() -> str:
    cpu = cpu_name() or platform.processor() or "unknown CPU"
    return f"{cpu}, {os.cpu_count()} cores"
