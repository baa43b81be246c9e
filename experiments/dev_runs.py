"""What the dev-split experiments share: the environment of a one-core `blob train`, the
command of a variant of a base run, and running it once (skipped when finished, resumed
when started)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.machine_time import MACHINE_TIME, machine_seconds, write_machine_time
from bench.table_run import timed_run
from experiments import kept

ROOT = Path(__file__).resolve().parent.parent
ENV = os.environ | {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}


def measured_on(threads: int | None = 1) -> str:
    """The machine and date a results file was written on (and the threads per run, when
    every run of the file had the same)."""
    import platform
    from datetime import date

    from blob_lora.machine import cpu_name

    cpu = cpu_name() or platform.machine()
    per_run = {None: "", 1: ", one thread per run"}.get(threads, f", {threads} threads per run")
    return f"Measured on {cpu}, {os.cpu_count()} cores{per_run}; {date.today()}."


def with_settings(cmd: list[str], settings: dict, out: Path) -> list[str]:
    """`cmd` with `--set key=value` for each setting, resuming a run already started."""
    cmd = [a for a in cmd if a != "--resume"]
    for key, value in settings.items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    if (out / "run_config.json").is_file():
        cmd.append("--resume")
    return cmd


def run_once(
    label: str, cmd: list[str], out: Path, need_adapter: bool = False, threads: int = 1
) -> bool:
    """Run `cmd` (output to `<out>.log`) with `threads` torch threads unless `out` is
    finished, here or kept from an earlier session (`need_adapter`: here, because another run
    starts from its adapter); keep it once finished. False when it failed."""
    if kept.finished_here(out) or (kept.finished(out) and not need_adapter):
        kept.where(out)  # keeps a run that finished before it was kept
        return True
    out.parent.mkdir(parents=True, exist_ok=True)
    print(label, flush=True)
    env = ENV | {"OMP_NUM_THREADS": str(threads)}
    log, partial = out.parent / f"{out.name}.log", out.parent / f"{out.name}.wall.json"
    code, wall_s = timed_run(cmd, env, log, partial)  # every start counted, killed ones too
    if code == 0 and kept.finished_here(out):
        write_machine_time(out, wall_s, threads)
        kept.keep(out)
    return code == 0


def machine_hours(out: Path) -> float | None:
    """A finished run's machine time, None where it was not timed (runs started before
    commit efb4b38)."""
    seconds = machine_seconds(kept.where(out) / MACHINE_TIME)
    return None if seconds is None else seconds / 3600
