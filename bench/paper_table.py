"""The paper's table at small scale: every method x 3 seeds, ID and OOD, one command.

    .venv/bin/python bench/paper_table.py run      # train/evaluate what is not done yet
    .venv/bin/python bench/paper_table.py status   # what is done, what is left
    .venv/bin/python bench/paper_table.py report   # -> results/paper_table.{json,md}

`run` goes seed by seed (all of seed 0 first, so a partial table is already a table),
skips finished runs and resumes interrupted ones from their last checkpoint, so it can
be stopped at any time and continued in a later session. Every run is one `blob train`
process; its settings come from the tier's YAML file (configs/table-*.yaml), the same for
every method of a task. `la` and `tfb` are post-hoc: they start from the MLE run of the
same task and seed (`init_from`, no further training), which is what the methods are.

OOD, two ways. The paper's protocol: the OBQA-trained runs are evaluated unchanged on
ARC-C, ARC-E and MMLU college chemistry / physics (`eval_datasets` of the obqa entry).
OOD detection: for each trained task with an `ood` set, the AUROC with which a method's
predictive uncertainty (max probability, entropy, and the mutual information for methods
that sample) separates the task's validation inputs (in) from the other set's (out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from blob_lora.atomic import write_text_atomic
from blob_lora.report.table import mean_std_cell

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RUNS = ROOT / "runs" / "paper-table"
TIERS = {
    "minilm": ROOT / "configs" / "table-minilm.yaml",
    "gemma": ROOT / "configs" / "table-gemma.yaml",
    # the re-run where the models learn and the posterior forms (issue 13)
    "minilm-regime": ROOT / "configs" / "table-regime-minilm.yaml",
}
# what `run`, `status` and `report` do without --tiers: the current table (the first one,
# 150 steps where the models barely learned, stays reproducible with --tiers minilm gemma)
DEFAULT_TIERS = ["minilm-regime"]
METHODS = ("mle", "map", "mcd", "ens", "bbb", "la", "blob", "tfb")
POST_HOC = ("la", "tfb")  # fitted on the MLE run's adapter
# Ensemble member 0 trains with the run's seed exactly as the MLE run does (same settings,
# init and data order): it is taken from there instead of being trained again.
NEEDS_MLE = (*POST_HOC, "ens")
EVAL_SAMPLES = {
    "mle": [0], "map": [0], "ens": [0], "mcd": [10], "bbb": [0, 10],
    "la": [10], "blob": [0, 10], "tfb": [10],
}  # fmt: skip
SEEDS = (0, 1, 2)
SCORES = ("max_prob", "entropy", "mutual_information")


@dataclass(frozen=True)
class Run:
    tier: str
    task: str  # the key in the tier's `tasks`
    method: str
    seed: int

    @property
    def out(self) -> Path:
        return RUNS / self.tier / self.task / f"{self.method}-s{self.seed}"

    @property
    def done(self) -> bool:
        return (self.out / "results-final.json").is_file()


def load_tier(tier: str) -> dict:
    return yaml.safe_load(TIERS[tier].read_text())


def plan(tiers: list[str], seeds: list[int], methods: list[str], tasks: list[str] | None):
    runs = []
    for seed in seeds:
        for tier in tiers:
            specs = load_tier(tier)["tasks"]
            for task in [t for t in tasks if t in specs] if tasks else specs:
                if seed not in specs[task].get("seeds", SEEDS):
                    continue
                for method in methods:
                    runs.append(Run(tier, task, method, seed))
    # post-hoc methods need their MLE run: keep mle before them (it is first in METHODS)
    return runs


def command(run: Run) -> list[str]:
    spec = load_tier(run.tier)
    task = spec["tasks"][run.task]
    settings = dict(spec["settings"]) | dict(task.get("settings") or {})
    extra = list(task.get("eval_datasets") or [])
    if task.get("ood") and task["ood"] not in extra:
        extra.append(task["ood"])
    settings |= {
        "dataset": task["dataset"],
        "eval_datasets": extra,
        "method": run.method,
        "seed": run.seed,
        "output_dir": str(run.out),
        "eval_samples": EVAL_SAMPLES[run.method],
    }
    options = (spec.get("method_options") or {}).get(run.method)
    if options:
        settings["method_options"] = dict(options)
    if run.method in POST_HOC:
        settings |= {"init_from": str(Run(run.tier, run.task, "mle", run.seed).out), "max_steps": 0}
    overrides = []
    for key, value in _flatten(settings):
        overrides += ["--set", f"{key}={json.dumps(value)}"]
    cmd = [str(ROOT / ".venv" / "bin" / "blob"), "train", *overrides]
    if (run.out / "run_config.json").is_file():
        cmd.append("--resume")
    return cmd


def _flatten(settings: dict, prefix: str = ""):
    for key, value in settings.items():
        if isinstance(value, dict) and key in ("adapter", "method_options"):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


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
    print(f"{len(runs) - len(todo)} of {len(runs)} runs done; {len(todo)} to go", flush=True)
    failed: list[Run] = []
    running: set[Run] = set()
    lock = threading.Lock()

    def next_run() -> Run | None:
        """The first run whose MLE run (for post-hoc methods) is done; None when none is
        left; waits while only runs blocked on a running MLE run remain."""
        while True:
            with lock:
                blocked = False
                for run in list(todo):
                    mle = Run(run.tier, run.task, "mle", run.seed)
                    if run.method in NEEDS_MLE and not mle.done:
                        if mle in running or mle in todo:
                            blocked = True
                            continue
                        todo.remove(run)
                        print(f"skip {run.out}: its MLE run failed or is not planned", flush=True)
                        continue
                    todo.remove(run)
                    running.add(run)
                    return run
                if not blocked:
                    return None
            time.sleep(5)

    def worker() -> None:
        while (run := next_run()) is not None:
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
            cores = os.cpu_count() or 1
            info = {"wall_s": round(took, 1), "jobs": args.jobs, "threads": threads, "cores": cores}
            (run.out / "machine_time.json").write_text(json.dumps(info))
            print(f"done in {took:.0f} s: {run.out.relative_to(ROOT)}", flush=True)

    workers = [threading.Thread(target=worker) for _ in range(args.jobs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failed:
        print("failed: " + ", ".join(str(r.out) for r in failed), file=sys.stderr)
    return 1 if failed else 0


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
    member = run.out / "member-0" / "adapter"
    if member.exists():
        return
    member.parent.mkdir(parents=True, exist_ok=True)
    tmp = member.with_name(".adapter.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(Run(run.tier, run.task, "mle", run.seed).out / "adapter", tmp)
    os.replace(tmp, member)


def cmd_status(args: argparse.Namespace) -> int:
    runs = plan(args.tiers, args.seeds, args.methods, args.tasks)
    total = 0.0
    for run in runs:
        took = _machine_s(run)
        total += took or 0.0
        state = "done" if run.done else ("started" if run.out.exists() else "todo")
        print(f"{state:8} {took or 0:7.0f} s  {run.out.relative_to(ROOT)}")
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


# -- report ---------------------------------------------------------------------------------
def collect(tiers: list[str]) -> tuple[list[dict], list[dict]]:
    """Result rows of every finished run (with `tier`, `trained_on`) and OOD-detection rows."""
    from safetensors.torch import load_file

    from blob_lora.metrics import auroc

    rows, detection = [], []
    for tier in tiers:
        spec = load_tier(tier)
        for task_key, task in spec["tasks"].items():
            for method in METHODS:
                for seed in SEEDS:
                    run = Run(tier, task_key, method, seed)
                    if not run.done:
                        continue
                    per_run = {"machine_s": _machine_s(run), "starts": _starts(run)}
                    for row in json.loads((run.out / "results-final.json").read_text()):
                        rows.append(
                            {
                                "tier": tier,
                                "trained_on": task_key,
                                **row,
                                "model": spec["model_label"],
                                **per_run,
                            }
                        )
                    if task.get("ood"):
                        detection += _detection_rows(run, task, spec, load_file, auroc)
    return rows, detection


def _detection_rows(run: Run, task: dict, spec: dict, load_file, auroc) -> list[dict]:
    out = []
    inside, outside = _ds_label(task["dataset"]), _ds_label(task["ood"])
    for n in EVAL_SAMPLES[run.method]:
        p_in = run.out / "predictions" / f"final-{inside}-N{n}.safetensors"
        p_out = run.out / "predictions" / f"final-{outside}-N{n}.safetensors"
        if not (p_in.is_file() and p_out.is_file()):
            continue
        a, b = load_file(str(p_in)), load_file(str(p_out))
        row = {
            "tier": run.tier,
            "model": spec["model_label"],
            "trained_on": run.task,
            "ood": outside,
            "method": run.method,
            "n_samples": n,
            "seed": run.seed,
        }
        for score in SCORES:
            if score == "mutual_information" and n == 0:
                continue
            row[f"auroc_{score}"] = auroc(_score(a, score), _score(b, score))
        out.append(row)
    return out


def _score(pred: dict, score: str):
    """Higher = more uncertain = more likely out of distribution."""
    probs = pred["probs"].double()
    if score == "max_prob":
        return (-probs.max(-1).values).numpy()
    if score == "entropy":
        return (-(probs * probs.clamp_min(1e-12).log()).sum(-1)).numpy()
    return pred["mutual_information"].double().numpy()


def _label(method: str, n: int) -> str:
    return f"{method} (N={n})" if method in ("blob", "bbb") or n else method


LABELS = [_label(m, n) for m in METHODS for n in EVAL_SAMPLES[m]]  # the table's row order


def _by_label(rows: list[dict], column_key: str, col: str) -> dict[str, list[dict]]:
    """One column of a grid: its rows per method label, in the table's order."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        if r[column_key] == col:
            out.setdefault(_label(r["method"], r["n_samples"]), []).append(r)
    return {label: out[label] for label in LABELS if label in out}


def _grid(rows: list[dict], columns: list[str], column_key: str, metrics: list[str]) -> list[str]:
    groups = {col: _by_label(rows, column_key, col) for col in columns}
    lines = [
        "| metric | method | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for metric in metrics:
        digits = 3 if metric in ("nll", "brier") or metric.startswith(("auroc", "sigma_r")) else 2
        digits = 4 if metric == "sigma_mean" else digits
        if metric == "acc" and any("majority_acc" in r for r in rows):
            cells = [
                mean_std_cell(_majority(groups[col]), 2, planned=len(SEEDS)) for col in columns
            ]
            lines.append(f"| {METRIC_LABELS['acc']} | majority class | " + " | ".join(cells) + " |")
        for label in LABELS:
            cells = [
                mean_std_cell(
                    [r[metric] for r in groups[col].get(label, []) if metric in r],
                    digits,
                    planned=len(SEEDS),
                )
                for col in columns
            ]
            if any(c != "–" for c in cells):
                lines.append(
                    f"| {METRIC_LABELS.get(metric, metric)} | {label} | " + " | ".join(cells) + " |"
                )
    return lines


def _majority(by_label: dict[str, list[dict]]) -> list[float]:
    """The majority-class accuracy of each seed's evaluation set (one value per seed)."""
    per_seed = {
        r["seed"]: r["majority_acc"] for rs in by_label.values() for r in rs if "majority_acc" in r
    }
    return list(per_seed.values())


METRIC_LABELS = {
    "sigma_mean": "mean σ", "sigma_ratio_median": "median σ/|μ|",
    "acc": "ACC (%) ↑", "ece": "ECE (%) ↓", "nll": "NLL ↓", "brier": "Brier ↓",
    "auroc_max_prob": "AUROC max-prob ↑", "auroc_entropy": "AUROC entropy ↑",
    "auroc_mutual_information": "AUROC MI ↑",
}  # fmt: skip


def cmd_report(args: argparse.Namespace) -> int:
    rows, detection = collect(args.tiers)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    meta = {"commit": commit, "machine": machine(), "date": str(date.today())}
    keep = (
        "model",
        "dataset",
        "method",
        "n_samples",
        "seed",
        "steps",
        "acc",
        "ece",
        "nll",
        "brier",
    )
    optional = ("majority_acc", "sigma_mean", "sigma_ratio_median")  # newer runs carry them
    table_rows = [
        {k: r[k] for k in keep}
        | {k: r[k] for k in optional if k in r}
        | {"tier": r["tier"], "trained_on": r["trained_on"], **meta}
        for r in rows
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "paper_table.json").write_text(json.dumps(table_rows, indent=1) + "\n")
    (RESULTS / "paper_table_ood_detection.json").write_text(
        json.dumps([d | meta for d in detection], indent=1) + "\n"
    )
    md = [
        "# The paper's table at small scale",
        "",
        f"Command: `.venv/bin/python bench/paper_table.py run` then `report`. Commit {commit}; "
        f"{meta['machine']}; {meta['date']}. Cells: mean ± std over seeds (a count in "
        "parentheses where fewer than 3 seeds are finished or planned).",
    ]
    for tier in args.tiers:
        spec = load_tier(tier)
        mine = [r for r in rows if r["tier"] == tier]
        if not mine:
            continue
        per_run = {(r["trained_on"], r["method"], r["seed"]): r["machine_s"] or 0 for r in mine}
        wall = sum(per_run.values()) / 3600
        s = spec["settings"]
        md += [
            "",
            f"## {spec['model_label']}",
            "",
            f"{spec.get('note', '').strip()}",
            "",
            f"Settings (every method): {s.get('max_steps') or 'per task'} steps, "
            f"batch {s.get('batch_size')}, protocol {s.get('protocol', 'default')}, "
            f"max length {s.get('max_length')}, lr {s.get('lr')}, adapter {s.get('adapter')}, "
            f"precision {s.get('precision', 'fp32')}"
            + (", batches grouped by length" if s.get("group_by_length") else "")
            + (f", kl_plan {s['kl_plan']}" if s.get("kl_plan") else "")
            + ".",
            *_task_notes(spec["tasks"]),
            "",
            "### In distribution",
            "",
        ]
        ind = [
            r for r in mine if r["dataset"] == _ds_label(spec["tasks"][r["trained_on"]]["dataset"])
        ]
        columns = [c for c in spec["tasks"] if any(r["trained_on"] == c for r in ind)]
        md += _grid(ind, columns, "trained_on", ["acc", "ece", "nll"])
        if any("sigma_mean" in r for r in ind):
            md += [
                "",
                "Posterior of the Bayesian methods (read before the calibration numbers):",
                "",
            ]
            md += _grid(ind, columns, "trained_on", ["sigma_mean", "sigma_ratio_median"])
        for task_key, task in spec["tasks"].items():
            ood_sets = list(task.get("eval_datasets") or [])
            if not ood_sets:
                continue
            ood_sets = [_ds_label(d) for d in ood_sets]
            sub = [r for r in mine if r["trained_on"] == task_key and r["dataset"] in ood_sets]
            if sub:
                md += [
                    "",
                    f"### Out of distribution: trained on {task_key}, evaluated unchanged",
                    "",
                ]
                md += _grid(sub, ood_sets, "dataset", ["acc", "ece", "nll"])
        md += _claims(ind, mine, spec)
        figure = _plot_tier(ind, columns, spec["model_label"])
        png = RESULTS / f"paper_table_{tier}.png"
        figure.savefig(png, dpi=110)
        md += ["", f"![ACC against ECE per method]({png.name})"]
        det = [d for d in detection if d["tier"] == tier]
        if det:
            md += ["", "### OOD detection (AUROC, in = the task's validation inputs)", ""]
            for task_key in spec["tasks"]:
                sub = [d for d in det if d["trained_on"] == task_key]
                if not sub:
                    continue
                md += ["", f"{task_key} vs {sub[0]['ood']}:", ""]
                md += _grid(
                    [d | {"col": "AUROC"} for d in sub],
                    ["AUROC"],
                    "col",
                    [f"auroc_{s}" for s in SCORES],
                )
        md += _cost_lines(mine, list(spec["tasks"]))
        md += [
            "",
            f"Machine time of the finished runs of this tier: {wall:.2f} h of the whole "
            f"{os.cpu_count()}-core machine (each run's wall time x its threads / cores).",
        ]
    (RESULTS / "paper_table.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


def _means(rows: list[dict], column_key: str, col: str) -> dict[str, dict[str, float]]:
    """Per method label, the seed-mean of each metric in one column of a grid."""
    return {
        label: {m: statistics.fmean(r[m] for r in mine) for m in ("acc", "ece", "nll")}
        for label, mine in _by_label(rows, column_key, col).items()
    }


def _rank(
    means: dict[str, dict[str, float]], label: str, metric: str, low: bool
) -> tuple[int, int]:
    """(place, out of): `label` among itself and the baselines (1 = best; ties share)."""
    rivals = [k for k in means if not k.startswith("blob") or k == label]
    sign = 1 if low else -1
    better = sum(sign * (means[k][metric] - means[label][metric]) < -1e-9 for k in rivals)
    return better + 1, len(rivals)


def _claims(ind: list[dict], mine: list[dict], spec: dict) -> list[str]:
    """The paper's three claims, each compared with this tier's seed means. BLoB is
    ranked against the baselines only (never against its other N)."""
    n10, n0 = "blob (N=10)", "blob (N=0)"
    grids = [(c, c, _means(ind, "trained_on", c)) for c in spec["tasks"]]
    for task_key, task in spec["tasks"].items():
        trained = [r for r in mine if r["trained_on"] == task_key]
        for ood in map(_ds_label, task.get("eval_datasets") or []):
            grids.append((task_key, ood, _means(trained, "dataset", ood)))
    rows = []
    for trained_on, evaluated, means in grids:
        if not {n10, n0, "mle"} <= set(means):
            continue
        ece, nll = _rank(means, n10, "ece", True), _rank(means, n10, "nll", True)
        gap = means[n10]["acc"] - means["mle"]["acc"]
        acc0 = _rank(means, n0, "acc", False)
        near = ece[0] <= 2 and nll[0] <= 2 and abs(gap) <= 1.0
        ood = "" if trained_on == evaluated else _verdict(ece[0] == 1)
        rows.append(
            f"| {trained_on} | {evaluated} | {_place(ece)} | {_place(nll)} | {gap:+.2f} | "
            f"{_verdict(near)} | {_place(acc0)} | {_verdict(acc0[0] == 1)} | {ood} |"
        )
    if not rows:
        return []
    return [
        "",
        "### The paper's claims against these numbers (seed means; rank 1 = best)",
        "",
        "Claims: (1) BLoB N=10 has the lowest or near-lowest (rank 1-2) ECE and NLL at an "
        "accuracy within 1 point of MLE; (2) BLoB N=0 keeps the best accuracy; (3) out of "
        "distribution BLoB N=10 is better calibrated than the baselines (ECE rank 1).",
        "",
        "| trained on | evaluated on | BLoB N=10: ECE rank | NLL rank | ACC − MLE | (1) "
        "| BLoB N=0: ACC rank | (2) | (3) |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]


def _place(rank: tuple[int, int]) -> str:
    return f"{rank[0]}/{rank[1]}"


def _plot_tier(ind: list[dict], columns: list[str], title: str):
    """One panel per task: each method's seed-mean ACC against ECE, with the seed std as
    error bars - the table's trade-off at a glance (up and left is better)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6 * len(columns), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    colors = {label: f"C{i}" for i, label in enumerate(LABELS)}
    for ax, col in zip(axes, columns, strict=True):
        for label, mine in _by_label(ind, "trained_on", col).items():
            ece, acc = [r["ece"] for r in mine], [r["acc"] for r in mine]
            spread = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in (ece, acc)]
            ax.errorbar(
                statistics.fmean(ece), statistics.fmean(acc), xerr=spread[0], yerr=spread[1],
                fmt="*" if label.startswith("blob") else "o", color=colors[label], label=label,
                markersize=10 if label.startswith("blob") else 6, capsize=2,
            )  # fmt: skip
        ax.set_title(col)
        ax.set_xlabel("ECE (%)")
        ax.set_ylabel("ACC (%)")
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", fontsize="small")
    fig.suptitle(title)
    return fig


def _verdict(agrees: bool) -> str:
    return "agrees" if agrees else "disagrees"


def _task_notes(tasks: dict) -> list[str]:
    """The tasks whose seeds or settings differ from the tier's."""
    notes = []
    for key, task in tasks.items():
        parts = [f"{k} {v}" for k, v in (task.get("settings") or {}).items()]
        if "seeds" in task:
            parts.append("seeds " + ", ".join(map(str, task["seeds"])))
        if parts:
            notes.append(f"{key}: " + "; ".join(parts))
    return ["", "Per task: " + ". ".join(notes) + "."] if notes else []


def _machine_s(run: Run) -> float | None:
    """Seconds of the whole machine a run took: wall time x its threads / the cores.

    Counting threads rather than this command's `--jobs` keeps the figure right when two
    table commands run side by side (one core each); it assumes the other cores were busy
    with other runs, as they were for every run of the committed table."""
    path = run.out / "machine_time.json"
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    cores = info.get("cores") or os.cpu_count() or 1
    return info["wall_s"] * min(info["threads"], cores) / cores


def _starts(run: Run) -> int:
    """How many times the run's process was started: each `blob train` loads the base
    model once, and transformers logs "Loading weights: 100%" when it has."""
    log = run.out.parent / f"{run.out.name}.log"
    return log.read_text(errors="replace").count("Loading weights: 100%") if log.is_file() else 0


def _cost_lines(mine: list[dict], tasks: list[str]) -> list[str]:
    """Measured cost per method: machine minutes per run (training, any post-hoc fit, and
    every evaluation at the method's N) and the ratio to MLE on the same task. Runs that
    were interrupted and resumed are left out: their time is not one run's (work redone
    on resuming; before the table kept a running total, an earlier start went untimed)."""
    per_run: dict[tuple[str, str, int], float] = {}
    for r in mine:
        if r["machine_s"] and r["starts"] == 1:
            per_run[(r["trained_on"], r["method"], r["seed"])] = r["machine_s"] / 60
    by_task_method: dict[tuple[str, str], list[float]] = {}
    for (task, method, _), minutes in per_run.items():
        by_task_method.setdefault((task, method), []).append(minutes)
    mean = {key: statistics.fmean(values) for key, values in by_task_method.items()}
    columns = [t for t in tasks if any(k[0] == t for k in mean)]
    if not columns:
        return []
    lines = [
        "",
        "### Measured cost: machine minutes per run (ratio to MLE)",
        "",
        "Mean over the seeds of runs that ran uninterrupted, two 1-thread runs sharing the "
        "2 cores. la and tfb are post-hoc and start from the MLE run (its training is not "
        "counted); ens trains 2 members and takes member 0 from the MLE run.",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for method in METHODS:
        cells = []
        for col in columns:
            minutes, base = mean.get((col, method)), mean.get((col, "mle"))
            if minutes is None:
                cells.append("–")
                continue
            ratio = f" ({minutes / base:.2f}x)" if base else ""
            cells.append(f"{minutes:.1f}{ratio}")
        if any(c != "–" for c in cells):
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _ds_label(ds: str | dict) -> str:
    """The label a run gives a dataset in its result rows and file names."""
    from blob_lora.train import dataset_label

    return dataset_label(json.dumps(ds) if isinstance(ds, dict) else ds)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{cpu}, {os.cpu_count()} cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["run", "status", "report"])
    parser.add_argument("--tiers", nargs="+", default=DEFAULT_TIERS, choices=list(TIERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument(
        "--tasks", nargs="+", help="only these task keys of the tiers, in this order per seed"
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (run)")
    parser.add_argument("--threads", type=int, help="torch threads per run (default cores/jobs)")
    args = parser.parse_args(argv)
    return {"run": cmd_run, "status": cmd_status, "report": cmd_report}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
