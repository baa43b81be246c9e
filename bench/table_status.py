"""`paper_table.py status`: what is done, what is left, and the machine time runs took and
will take. The report reads the same per-run measurements (`_machine_s`, `_starts`)."""

from __future__ import annotations

import argparse
import json
import statistics

from bench.machine_time import MACHINE_TIME, machine_seconds
from bench.table_plan import ROOT, Run, left_out, plan


def cmd_status(args: argparse.Namespace) -> int:
    runs = plan(args.tiers, args.seeds, args.methods, args.tasks)
    total = 0.0
    for run in runs:
        took = _machine_s(run)
        total += took or 0.0
        state = "done" if run.done else ("started" if run.out.exists() else "todo")
        if state != "done" and run.stale:
            state = "stale"  # recorded at an earlier budget: trained again
        print(f"{state:8} {took or 0:7.0f} s  {run.out.relative_to(ROOT)}")
    for line in left_out(args.tiers, args.seeds, args.methods, args.tasks):
        print(line)
    done = sum(r.done for r in runs)
    print(f"{done}/{len(runs)} done, {total / 3600:.2f} h of machine time spent on them")
    left, guessed = projected_s(runs)
    print(
        f"projected: {(total + left) / 3600:.2f} h for all {len(runs)} "
        f"({left / 3600:.2f} h left, not counting {guessed} runs whose method has no "
        "finished run in their tier yet)"
    )
    return 0


def projected_s(runs: list[Run]) -> tuple[float, int]:
    """Machine seconds the unfinished runs will take: the mean of the finished runs of the
    same tier, task and method, else of the same tier and method (a task of another
    length); runs with neither count as 0 and are reported."""
    by_task: dict[tuple, list[float]] = {}
    by_method: dict[tuple, list[float]] = {}
    for run in runs:
        took = _machine_s(run) if run.done else None
        if took:
            by_task.setdefault((run.tier, run.task, run.method), []).append(took)
            by_method.setdefault((run.tier, run.method), []).append(took)
    left, guessed = 0.0, 0
    for run in runs:
        if run.done:
            continue
        values = by_task.get((run.tier, run.task, run.method)) or by_method.get(
            (run.tier, run.method)
        )
        if values:
            left += statistics.fmean(values)
        else:
            guessed += 1
    return left, guessed


def _machine_s(run: Run) -> float | None:
    """Seconds of the whole machine a run took: wall time x its threads / the cores.

    Counting threads rather than this command's `--jobs` keeps the figure right when two
    table commands run side by side (one core each); it assumes the other cores were busy
    with other runs, as they were for every run of the committed table."""
    took = machine_seconds(run.out / MACHINE_TIME)
    if took is None:  # finished in an earlier session: its committed record says
        return json.loads(run.record.read_text()).get("machine_s") if run.recorded else None
    return took


# the line the table's runner writes to a run's log at each start (bench/table_run.py)
START_MARK = "[paper_table] start\n"


def _starts(run: Run) -> int:
    """How many times the run's process was started: the runner marks each start in the
    log; starts from before the mark existed show as transformers' "Loading weights: 100%"
    (`blob` no longer shows that bar, so no start counts twice)."""
    log = run.out.parent / f"{run.out.name}.log"
    if not log.is_file():
        return 0
    text = log.read_text(errors="replace")
    return text.count(START_MARK) + text.count("Loading weights: 100%")
