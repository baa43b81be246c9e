"""What a prediction costs: each method of the paper table, at each N it is scored at, and
BLoB's one-pass predictives, timed on its own finished run against MLE at N=0 on the same
task, with the peak memory of the process while it predicts.

    .venv/bin/python -m bench.inference_cost [--tiers oc-minilm oc-gemma] [--rows 64]
        # -> bench/results/inference_cost.{json,md}; the paper table's report reads it

Each (run, N, mode) is measured in a process of its own, one after another, so that one
measurement's memory and caches do not reach the next: the run is loaded, one batch is
predicted to warm up, then the peak is reset and `--rows` rows of the run's evaluation set
are predicted as `blob eval` does (same batches, same method code). Time is seconds per
example; memory is the process's peak resident set (Linux VmHWM, reset before the timed
pass) or, on a GPU, torch's peak allocation. Both are reported as ratios to MLE N=0 of the
same tier and task, measured in the same invocation. Seed 0's run of each method is used
(the lowest finished seed); map that was MLE relabelled has MLE's cost. A method the table
has not run yet is measured on a stand-in (`--stand-in-steps`, default 10): the tier's own
command for it, trained for that many steps on 64 training rows (a post-hoc method fitted
on 64 rows of the table's MLE run) under runs/inference-cost/; what a prediction costs
does not depend on how long the adapter trained, and the table marks these cells.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

from bench import table_plan
from bench.scoring import machine
from bench.table_plan import SEEDS, eval_samples, load_tier, methods
from blob_lora.run.files import RunDir

OUT = Path(__file__).resolve().parent / "results"
# the ratios `blob methods` shows, shipped with the package
PACKAGE_COSTS = Path(__file__).resolve().parent.parent / "src" / "blob_lora" / "methods"
PACKAGE_COSTS = PACKAGE_COSTS / "measured_cost.json"
FAST_MODES = ("linear", "head")  # BLoB's one-pass predictives, measured at N=10
STAND_IN_ROWS = 64  # training rows of a stand-in run (a post-hoc fit's rows too)


def reset_peak() -> None:
    """Start the peak from what is live now: on a GPU torch's own count; on Linux the
    freed heap is first handed back (glibc's malloc_trim), so that what loading or a
    post-hoc fit freed does not count as the prediction's, then the peak resident set is
    reset ("5" to /proc/self/clear_refs)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: the peak may include freed heap
        pass
    Path("/proc/self/clear_refs").write_text("5")


def peak_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak memory needs Linux or a GPU")


def measure_one(run_dir: Path, n: int, mode: str | None, rows: int) -> dict:
    """One timed prediction of `rows` examples of a finished run (in this process)."""
    from blob_lora.run.config import RunConfig
    from blob_lora.run.evaluate import Evaluator, eval_set
    from blob_lora.run.runner import Runner

    cfg = RunConfig.from_saved(json.loads((run_dir / "run_config.json").read_text()))
    cfg.output_dir = str(run_dir)
    cfg.eval_limit = rows
    runner = Runner(cfg)
    runner.load_finished()
    if mode is not None:
        runner.setup.model.adapter_config.predict_sample_mode = mode
    examples = eval_set(runner.ctx, cfg.dataset)
    evaluator = Evaluator(runner.ctx)
    evaluator.predict(examples[: cfg.eval_batch_size], n, desc="warm-up")
    reset_peak()
    start = time.perf_counter()
    evaluator.predict(examples, n, desc=f"{cfg.method} {mode or ''}")
    seconds = time.perf_counter() - start
    return {"s_per_example": seconds / len(examples), "peak_mb": peak_mb(), "rows": len(examples)}


def first_run(tier: str, task: str, method: str) -> Path | None:
    """The method's finished run of the lowest seed, or None."""
    for seed in SEEDS:
        out = table_plan.RUNS / tier / task / f"{method}-s{seed}"
        if RunDir(out).results("final").is_file():
            return out
    return None


def stand_ins() -> Path:
    return table_plan.RUNS.parent / "inference-cost"


def stand_in(
    tier: str, task: str, method: str, steps: int, rows: int, threads: int = 1
) -> Path | None:
    """A short run of the tier's own command for a method the table has not run: the same
    model, adapter and method settings, `steps` steps on STAND_IN_ROWS rows. None if it
    fails (the reason goes to stderr)."""
    out = stand_ins() / tier / task / method
    if RunDir(out).results("final").is_file():
        return out
    cmd = table_plan.command(table_plan.Run(tier, task, method, 0))
    settings = {cmd[i + 1].split("=", 1)[0]: cmd[i + 1].split("=", 1)[1]
                for i, a in enumerate(cmd) if a == "--set"}  # fmt: skip
    settings |= {
        "output_dir": json.dumps(str(out)),
        "train_limit": str(STAND_IN_ROWS),
        "eval_limit": str(rows),
        "eval_datasets": "[]",
        # the method's own N: a post-hoc fit per N (blob-ts's temperature) needs them
        "eval_samples": json.dumps(eval_samples(method)),
        "save_every": "0",
        "eval_every": "0",
        # a KL plan whose cycle fits the stand-in's few steps (what a prediction costs does
        # not depend on the KL's schedule)
        "kl_plan": json.dumps("budget"),
    }
    if settings.get("max_steps") != "0":  # a post-hoc method stays a fit (max_steps 0)
        settings["max_steps"] = str(steps)
    argv = [cmd[0], "train"] + [x for k, v in settings.items() for x in ("--set", f"{k}={v}")]
    if RunDir(out).config.is_file():
        argv.append("--resume")
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        print(f"{tier}/{task} {method}: stand-in failed: {tail[0]}", file=sys.stderr)
        return None
    return out


def plan(tier: str, task: str) -> list[dict]:
    """Every (method, N, mode) the table scores, with the run that measures it."""
    items = []
    for method in methods():
        run = first_run(tier, task, method)
        for n in eval_samples(method):
            items.append({"method": method, "n": n, "mode": None, "run": run})
        if method == "blob":
            for mode in FAST_MODES:
                items.append({"method": method, "n": 10, "mode": mode, "run": run})
    return items


def label(item: dict) -> str:
    from blob_lora.methods import sample_label

    text = sample_label(item["method"], item["n"])
    return f"{text}, {item['mode']}" if item["mode"] else text


def measure_tier(
    tier: str, rows: int, threads: int, stand_in_steps: int = 0
) -> dict[str, dict[str, dict]]:
    """{task: {label: measurement}}, each in a fresh process; ratios to MLE N=0."""
    out: dict[str, dict[str, dict]] = {}
    for task in load_tier(tier)["tasks"]:
        cells: dict[str, dict] = {}
        for item in plan(tier, task):
            run = item["run"]
            if run is None and item["method"] == "map":  # relabelled MLE: no run of its own
                run, item = first_run(tier, task, "mle"), {**item, "relabelled": True}
            elif run is None and stand_in_steps and first_run(tier, task, "mle"):
                run = stand_in(tier, task, item["method"], stand_in_steps, rows, threads)
                item = {**item, "stand_in_steps": stand_in_steps}
            if run is None:
                continue
            cmd = [sys.executable, "-m", "bench.inference_cost", "one", str(run)]
            cmd += ["--n", str(item["n"]), "--rows", str(rows), "--threads", str(threads)]
            if item["mode"]:
                cmd += ["--mode", item["mode"]]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
                print(f"{tier}/{task} {label(item)}: failed: {tail[0]}", file=sys.stderr)
                continue
            cell = json.loads(done.stdout.strip().splitlines()[-1])
            cell |= {"run": str(run.relative_to(table_plan.RUNS.parent)), "n_samples": item["n"]}
            cell |= {"relabelled": True} if item.get("relabelled") else {}
            if item.get("stand_in_steps"):
                cell["stand_in_steps"] = item["stand_in_steps"]
            cells[label(item)] = cell
            print(
                f"{tier}/{task} {label(item)}: {cell['s_per_example']:.4f} s/ex, "
                f"{cell['peak_mb']:.0f} MB",
                file=sys.stderr,
            )
        base = cells.get(label({"method": "mle", "n": 0, "mode": None}))
        for cell in cells.values():
            cell["time_x"] = cell["s_per_example"] / base["s_per_example"] if base else None
            cell["memory_x"] = cell["peak_mb"] / base["peak_mb"] if base else None
        out[task] = cells
    return out


def package_costs(result: dict) -> dict:
    """The ratios alone, per tier and task, for `blob methods`."""
    tasks = []
    for tier, per_task in result["tiers"].items():
        model = load_tier(tier)["settings"]["model"]
        for task, cells in per_task.items():
            kept = {
                name: {"time_x": round(c["time_x"], 3), "memory_x": round(c["memory_x"], 3)}
                for name, c in cells.items()
                if c.get("time_x") is not None
            }
            tasks.append({"tier": tier, "task": task, "model": model, "cells": kept})
    return {
        "measured_on": result["machine"],
        "source": "bench/results/inference_cost.json",
        "tasks": tasks,
    }


def markdown(result: dict) -> str:
    lines = [
        "# Inference cost per method: time per example and peak memory against MLE N=0",
        "",
        f"Measured on {result['machine']}, {result['rows']} rows of each run's evaluation "
        "set, each (method, N) in a process of its own (bench/inference_cost.py).",
    ]
    for tier, tasks in result["tiers"].items():
        for task, cells in tasks.items():
            lines += [
                "",
                f"## {tier}, {task}",
                "",
                "| method | s / example | time x MLE N=0 | peak MB | memory x MLE N=0 | run |",
                "|---|---:|---:|---:|---:|---|",
            ]
            for name, c in cells.items():
                time_x = f"{c['time_x']:.2f}x" if c["time_x"] else "–"
                mem_x = f"{c['memory_x']:.2f}x" if c["memory_x"] else "–"
                run = c["run"]
                if c.get("stand_in_steps"):
                    run += f" (stand-in, {c['stand_in_steps']} steps)"
                lines.append(
                    f"| {name} | {c['s_per_example']:.4f} | {time_x} | "
                    f"{c['peak_mb']:.0f} | {mem_x} | {run} |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("one", help="measure one run at one N in this process (JSON out)")
    one.add_argument("run", type=Path)
    one.add_argument("--n", type=int, required=True)
    one.add_argument("--mode", choices=FAST_MODES)
    one.add_argument("--rows", type=int, default=64)
    one.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiers", nargs="+", default=["oc-minilm", "oc-gemma"])
    parser.add_argument("--rows", type=int, default=64, help="examples timed per measurement")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--stand-in-steps",
        type=int,
        default=10,
        help="steps of a stand-in run for a method the table has not run (0: leave it out)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--package-file",
        type=Path,
        default=PACKAGE_COSTS,
        help="where the ratios `blob methods` shows are written",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "one":
        print(json.dumps(measure_one(args.run, args.n, args.mode, args.rows)))
        return 0
    result = {
        "machine": f"{machine()}, {args.threads} thread(s), {date.today()}",
        "rows": args.rows,
        "tiers": {
            tier: measure_tier(tier, args.rows, args.threads, args.stand_in_steps)
            for tier in args.tiers
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "inference_cost.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "inference_cost.md").write_text(markdown(result))
    args.package_file.write_text(json.dumps(package_costs(result), indent=1) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
