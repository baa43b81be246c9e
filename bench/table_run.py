"""`paper_table.py run`: train and evaluate the planned runs that are not done yet, a few at
a time, each one `blob train` process, keeping count of the machine time they take."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from bench.machine_time import write_machine_time
from bench.table_collect import record_run
from bench.table_plan import (
    ROOT,
    Run,
    command,
    left_out,
    load_tier,
    plan,
    post_hoc_source,
    source_run,
    task_settings,
)
from bench.table_records import map_is_mle, relabel_mle_as_map
from bench.table_status import START_MARK
from blob_lora.atomic import write_text_atomic
from blob_lora.run.context import no_accelerator
from blob_lora.run.files import RunDir
from blob_lora.run.precision import slow_precision_warning

MAP_NOTE = "MAP's weight decay rounds away in fp32 at this lr: bit for bit the same run"


def cmd_run(args: argparse.Namespace) -> int:
    """Run what is not done, `--jobs` runs at a time (each with cores/jobs threads: on 2
    cores two 1-thread runs get more done than one 2-thread run)."""
    runs = plan(args.tiers, args.seeds, args.methods, args.tasks)
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": str(threads),
    }
    todo = [r for r in runs if not r.done]
    for line in left_out(args.tiers, args.seeds, args.methods, args.tasks):
        print(line, flush=True)
    print(f"{len(runs) - len(todo)} of {len(runs)} runs done; {len(todo)} to go", flush=True)
    slow = slow_precision_tiers(todo)
    if slow and not args.allow_slow_precision:
        print(
            f"error: tier {', '.join(slow)} runs precision=bf16, and this machine has no GPU "
            "and a CPU without native bf16 (tens of times slower than fp32, and machine-time "
            "figures not comparable with the tier's others); run it on a GPU or an AVX512/AMX "
            "CPU, or pass --allow-slow-precision",
            file=sys.stderr,
        )
        return 2
    todo = _with_local_sources(todo)
    retrain = {r for r in todo if r.done}  # runs trained again for their adapter
    failed: list[Run] = []
    running: set[Run] = set()
    lock = threading.Lock()

    def next_run() -> Run | None:
        """The first run whose source run (a post-hoc method's, the ensemble's MLE) is
        done; None when none is left; waits while only runs blocked on a running source
        run remain."""
        while True:
            with lock:
                blocked = False
                for run in list(todo):
                    if run.done and run not in retrain:  # another table command finished it
                        todo.remove(run)
                        continue
                    mle = Run(run.tier, run.task, "mle", run.seed)
                    if map_is_mle(run) and mle.done:
                        todo.remove(run)
                        if mle.trained:
                            record_run(mle)
                        relabel_mle_as_map(run)
                        print(f"{run.out.name}: the MLE run relabelled ({MAP_NOTE})", flush=True)
                        continue
                    source = mle if map_is_mle(run) else source_run(run)
                    if source is not None and not source.trained:
                        if source in running or source in todo:
                            blocked = True
                            continue
                        todo.remove(run)
                        print(
                            f"skip {run.out}: its {source.method} run failed or is not planned",
                            flush=True,
                        )
                        continue
                    todo.remove(run)
                    running.add(run)
                    return run
                if not blocked:
                    return None
            time.sleep(5)

    def worker() -> None:
        while (run := next_run()) is not None:
            _clear_other_budget(run)
            if run.method == "ens":
                reuse_mle_as_member_zero(run)
            print(f"start {run.out.relative_to(ROOT)}", flush=True)
            log = run.out.parent / f"{run.out.name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            code, took = timed_run(command(run), env, log, _partial_path(run))
            with lock:
                running.discard(run)
                if code != 0:
                    failed.append(run)
                    print(f"FAILED (exit {code}, see {log}) {run.out}", flush=True)
                    continue
            write_machine_time(run.out, took, threads, jobs=args.jobs)
            record_run(run)
            print(f"done in {took:.0f} s: {run.out.relative_to(ROOT)}", flush=True)

    workers = [threading.Thread(target=worker) for _ in range(args.jobs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failed:
        print("failed: " + ", ".join(str(r.out) for r in failed), file=sys.stderr)
    return 1 if failed else 0


def slow_precision_tiers(runs: list[Run]) -> list[str]:
    """The tiers of `runs` that would train in bf16 on a CPU that emulates it."""
    device = torch.device("cpu" if no_accelerator() else "cuda")  # any accelerator: not a CPU
    tiers = []
    for tier in dict.fromkeys(r.tier for r in runs):
        spec = load_tier(tier)
        tasks = {r.task for r in runs if r.tier == tier}
        if any(
            slow_precision_warning(task_settings(spec, t).get("precision", "fp32"), device)
            for t in tasks
        ):
            tiers.append(tier)
    return tiers


def _with_local_sources(todo: list[Run]) -> list[Run]:
    """Runs that start from another run's adapter (la, tfb, ts and ens from MLE's, blob-ts
    from BLoB's) need it in runs/; when only an earlier session's record of it is here,
    train it again first (same seed, same numbers; its record is rewritten)."""
    out: list[Run] = []
    for run in todo:
        source = source_run(run)
        if source is not None and not source.trained and source not in out + todo:
            out.append(source)
        out.append(run)
    return out


def _clear_other_budget(run: Run) -> None:
    """Delete the run's folder when it holds a run at another budget (the tier's max_steps
    changed since): resuming it would continue the old schedule."""
    files = RunDir(run.out)
    if run.steps is None or not files.config.is_file():
        return
    if post_hoc_source(run.method):  # max_steps 0: its rows carry its source run's steps
        final = files.results("final")
        rows = json.loads(final.read_text()) if final.is_file() else []
        steps = rows[0].get("steps") if rows else run.steps
    else:
        steps = json.loads(files.config.read_text()).get("max_steps")
    if steps != run.steps:
        print(f"{run.out.name}: trained for {steps} steps, the budget is now {run.steps}; "
              "starting it again", flush=True)  # fmt: skip
        shutil.rmtree(run.out)
        _partial_path(run).unlink(missing_ok=True)


def _partial_path(run: Run) -> Path:
    return run.out.parent / f"{run.out.name}.wall.json"


def timed_run(
    cmd: list[str], env: dict, log: Path, partial: Path, every_s: float = 30.0
) -> tuple[int, float]:
    """Run `cmd` with its output appended to `log`; return its exit code and the wall
    seconds of this start plus every earlier, interrupted one. The running total is kept
    in `partial` every `every_s` seconds, so a start killed with the table command is still
    counted when the run resumes; it is removed once the run succeeds."""
    before = json.loads(partial.read_text())["wall_s"] if partial.is_file() else 0.0
    start = time.time()

    def keep_total() -> float:
        took = before + time.time() - start
        write_text_atomic(partial, json.dumps({"wall_s": round(took, 1)}))
        return took

    with open(log, "a") as fh:
        fh.write(START_MARK)
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        while True:
            try:
                code = proc.wait(timeout=every_s)
                break
            except subprocess.TimeoutExpired:
                keep_total()
    if code != 0:  # a failed start is machine time spent too: count it when the run is retried
        return code, keep_total()
    partial.unlink(missing_ok=True)
    return code, before + time.time() - start


def reuse_mle_as_member_zero(run: Run) -> None:
    member = RunDir(run.out).part("member-0").adapter
    if member.exists():
        return
    member.parent.mkdir(parents=True, exist_ok=True)
    tmp = member.with_name(".adapter.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(RunDir(Run(run.tier, run.task, "mle", run.seed).out).adapter, tmp)
    os.replace(tmp, member)
