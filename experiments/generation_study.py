"""Summarization with BLoB on DialogSum (Gemma-3 270M): budget, N=0, sensitivity, sampling.

    .venv/bin/python -m experiments.generation_study run [--only PART ...] [--jobs 2]
    .venv/bin/python -m experiments.generation_study report   # -> experiments/results/generation*
    .venv/bin/python -m experiments.generation_study run --dry-run   # toy size, /tmp/genstudy-dry

Issue 15, item 5. Every run is a `blob train` (task=generate), made resumable by
dev_runs.run_once / with_settings (skipped when finished, resumed when started); up to
`--jobs` run at a time (`--threads` each), each as soon as the runs it needs have finished.
PART (`--only`, each brings the runs it needs): budget, nonsampling, sensitivity, sampling.

0. budget: one MLE run on a dev split carved from the training data (20%, seed 7; DialogSum's
   validation and test splits are not read), ROUGE-L (N=0, greedy) of 100 dev dialogues
   (drawn with seed 0) every 25 steps. The budget follows the classification tasks' rule
   (regime_scan): the first scored step within 1 ROUGE-L point of the scan's best, but not
   before the dev NLL is within 0.01 nats of its lowest; a scan whose NLL still falls at
   its end is marked too short. The LR schedule decays over the whole scan, so the curve
   at step t is not exactly a run of t steps (as in regime_scan).
1. nonsampling: MLE and BLoB at the budget on the full training split, N=0 (posterior mean,
   greedy) on a fixed test subset: the first 100 dialogues of DialogSum test in file order
   (test_0 .. test_99), each with its 3 references; 3 seeds. (`eval_limit` would draw a
   different subset for every seed, so the subset is a file of its own, written under the
   study's run folder, read through a field mapping identical to the registered dialogsum.)
2. sensitivity: BLoB, prior std beta in {0.1, 0.2, 0.3} x the budget-aware KL clock at 1/2x,
   1x and 2x the study's clock (kl_clock_scale 0.1, the product default when it ran),
   seed 0, same budget and test subset as 1; the default cell is study 1's BLoB seed 0.
   Nothing is chosen from it. Trajectories
   of KL, median sigma/|mu| and NLL + pi x KL (the objective as the run weighted it, from
   metrics.jsonl); a cell is collapsed when its final median sigma/|mu| exceeds
   posterior_stats.COLLAPSE_RATIO, not formed when its mean sigma ends under FORMED_FACTOR x
   its init (as experiments/sensitivity.py). In the authors' code gamma only sets the
   re-weighting cycle length; what moves sigma is the clock, so the clock is the axis.
3. sampling: study 1's seed-0 models, S=5 samples per dialogue. BLoB: one weight sample per
   output, greedy. MLE: temperature sampling (top-p 0.9) at the mean weights, the
   temperature chosen so that the mean pairwise disagreement (1 - ROUGE-L F1 between an
   input's samples) matches BLoB's on dev: the first 30 dialogues of DialogSum's own
   validation split (the models trained on the whole training split, so the dev carve would
   be training data here), a grid of temperatures, linear interpolation between the two
   that bracket BLoB's. Then the first 50 test dialogues x S samples for both: KDEs of the
   per-sample ROUGE-L and BERTScore, and the uncertainty AUROC / AURC (does an input's
   disagreement flag a low expected ROUGE-L?). The posterior's sigma statistics are printed:
   a posterior that has not formed makes this comparison meaningless.

BERTScore is the offline MiniLM: NOT comparable with published BERTScores (other models).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from blob_lora.config import AdapterConfig
from experiments import kept, regime_scan
from experiments.dev_runs import measured_on, run_once, with_settings

ROOT = Path(__file__).resolve().parent.parent
BLOB = ROOT / ".venv" / "bin" / "blob"
MODEL = "gemma-270m"
DEV = {"name": "dialogsum", "dev": 0.2}
TEMPLATE = "Dialogue: {source}\nSummary:"  # the registered dialogsum's (DIALOGSUM_FIELDS)
STUDY_CLOCK = 0.1  # the study's clock, pinned: its runs must not follow a later default
DEFAULT_BETA = AdapterConfig.__dataclass_fields__["prior_std"].default
DEFAULT_EPS = AdapterConfig.__dataclass_fields__["init_std_eps"].default
TOP_P = 0.9  # MLE's decoding noise: temperature sampling inside the top 90%
MARGIN = 1.0  # ROUGE-L points: the budget is the first step this close to the best
FLAT = 0.01  # a mean disagreement under this: BLoB's samples are (nearly) all the same

# Cost model, measured on this machine (AMD EPYC, 2 cores) with probes of 4 and 12 steps
# while two other one-thread runs shared it (three processes on two cores): an upper bound;
# with one run per core expect about 2/3 of it.
STEP_S = 12.0  # s per training step: Gemma-270M, batch 8, max_length 384, bf16, 1 thread
GREEDY_S = 2.0  # s per N=0 output: greedy, 64 new tokens, 16 prompts per generate call
SAMPLE_S = 1.6  # s per sampled output: 4-5 samples x 3-4 prompts per call
NLL_S = 1.0  # s per reference per weight draw (teacher-forced reference NLL)
LOAD_S = 60.0  # s per run: model, tokenizer, data, BERTScore's MiniLM, writing
LIMIT_H = 8.0  # the study's machine time, two runs at a time

# Every run's settings. batch 8 and lr 1e-3 with r=8/alpha=16 are the Gemma tier of
# regime_scan; adapters on q/k/v of every attention plus lm_head (the generation default).
# max_length 384 (prompt + summary, Gemma tokens; mean 247): 10.4% of the training pairs
# lose the end of their dialogue (2.4% at 512, for ~1.3x the step cost), 3% of the first
# 100 test prompts. max_new_tokens 64 covers 99.7% of those dialogues' references.
# eval_batch_size 16: 16 greedy prompts, or 3 prompts x 5 samples, per generate call.
SETTINGS: dict[str, Any] = {
    "model": MODEL,
    "precision": "bf16",
    "batch_size": 8,
    "max_length": 384,
    "lr": 1e-3,
    "warmup_ratio": 0.06,
    "group_by_length": True,
    "save_every": 50,
    "eval_batch_size": 16,
    "max_new_tokens": 64,
    "adapter.r": 8,
    "adapter.alpha": 16,
    "adapter.target_modules": ["q_proj", "k_proj", "v_proj", "lm_head"],
}


@dataclass(frozen=True)
class Size:
    """How big the study is, and where it writes."""

    runs: Path
    results: Path
    scan_steps: int  # the budget scan's length, and so the largest budget
    scan_every: int
    dev_limit: int  # dev dialogues scored during the scan
    test_dialogues: int  # studies 1 and 2: the first N test dialogues (x 3 references)
    seeds: tuple[int, ...]
    betas: tuple[float, ...]
    scales: tuple[float, ...]  # x the study's KL clock (STUDY_CLOCK)
    match_dialogues: int  # study 3: validation dialogues the temperature is matched on
    sample_dialogues: int  # study 3: the first K test dialogues
    samples: int  # S per dialogue
    temperatures: tuple[float, ...]
    settings: dict[str, Any] = field(default_factory=dict)


# Study size, from the cost model (worst case: the budget is the whole scan, 200 steps):
# scan 200 steps + 8 dev scorings of 100 dialogues: 1.35 h, alone (nothing else can start);
# 14 training runs (6 in study 1, 8 new sensitivity cells) of 200 steps + N=0 and reference
# NLL on 100 x 3 test references: 0.82 h each; study 3: 7 dev runs of 30 x 5 samples and 2
# test runs of 50 x 5 samples (BLoB's reference NLL under 5 draws): 1.2 h in all.
# Two at a time: 1.35 + (14 x 0.82 + 1.2) / 2 = 7.7 h upper bound (about 5 h with one run
# per core); a budget of 100 steps: 5.3 h. `run` prints the estimate (`estimate`).
REAL = Size(
    runs=ROOT / "runs" / "generation-study",
    results=ROOT / "experiments" / "results",
    scan_steps=200,
    scan_every=25,
    dev_limit=100,
    test_dialogues=100,
    seeds=(0, 1, 2),
    betas=(0.1, 0.2, 0.3),
    scales=(0.5, 1.0, 2.0),
    match_dialogues=30,
    sample_dialogues=50,
    samples=5,
    # greedy-like to plain sampling, interpolated; 0.05 and 0.1 because BLoB's samples at
    # seed 0 disagreed less (0.199) than MLE's at T=0.2 (0.330): the grid must bracket it
    temperatures=(0.05, 0.1, 0.2, 0.4, 0.7, 1.0),
    settings=SETTINGS,
)
# The same pipeline at toy size: a few minutes, under /tmp (never bench/results).
DRY = Size(
    runs=Path("/tmp/genstudy-dry/runs"),
    results=Path("/tmp/genstudy-dry/results"),
    scan_steps=4,
    scan_every=2,
    dev_limit=4,
    test_dialogues=4,
    seeds=(0,),
    betas=(0.1, DEFAULT_BETA),  # one new cell and the reused default one
    scales=(1.0,),
    match_dialogues=2,
    sample_dialogues=2,
    samples=2,
    temperatures=(0.5, 1.0),
    settings=SETTINGS
    | {"batch_size": 2, "max_length": 256, "max_new_tokens": 8, "eval_batch_size": 4}
    | {"save_every": 1},  # a checkpoint every step: an interrupted dry run resumes from one
)
PARTS = ("budget", "nonsampling", "sensitivity", "sampling")


# --------------------------------------------------------------------------- data


def subset_spec(size: Size, split: str, n: int) -> dict[str, Any]:
    """A field mapping identical to the registered dialogsum whose validation split is the
    first `n` dialogues of DialogSum's `split` (file order, every reference), its train
    split DialogSum's whole training split. Writes the subset file once."""
    from blob_lora.generation.data import dialogsum_file

    path = size.runs / "data" / f"dialogsum-{split}{n}.jsonl"
    if not path.is_file():
        rows = [json.loads(x) for x in dialogsum_file(split).read_text().splitlines() if x.strip()]
        first: dict[str, None] = {}
        for r in rows:
            if len(first) == n and r["dialogue"] not in first:
                continue
            first.setdefault(r["dialogue"], None)
        keep = [r for r in rows if r["dialogue"] in first]
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
        tmp.rename(path)
    return {
        "name": f"dialogsum-{split}{n}",
        "paths": {"train": str(dialogsum_file("train")), "validation": str(path)},
        "source": "dialogue",
        "target": "summary",
        "template": TEMPLATE,
        "id": "id",
    }


def test_spec(size: Size) -> dict[str, Any]:
    return subset_spec(size, "test", size.test_dialogues)


def match_spec(size: Size) -> dict[str, Any]:
    return subset_spec(size, "validation", size.match_dialogues)


def sample_spec(size: Size) -> dict[str, Any]:
    return subset_spec(size, "test", size.sample_dialogues)


# --------------------------------------------------------------------------- runs


def budget_dir(size: Size) -> Path:
    return size.runs / "budget-mle"


def train_dir(size: Size, method: str, seed: int) -> Path:
    return size.runs / f"{method}-s{seed}"


def cell_dir(size: Size, beta: float, scale: float) -> Path:
    if (beta, scale) == (DEFAULT_BETA, 1.0):  # the default cell is study 1's BLoB seed 0
        return train_dir(size, "blob", size.seeds[0])
    return size.runs / f"sens-beta{beta:g}-clock{scale:g}"


def match_dir(size: Size, method: str, temperature: float | None = None) -> Path:
    return size.runs / ("match-blob" if method == "blob" else f"match-mle-t{temperature:g}")


def sample_dir(size: Size, method: str) -> Path:
    return size.runs / f"sample-{method}"


def finished(out: Path) -> bool:
    """Finished here or kept from an earlier session (experiments/kept.py)."""
    return kept.finished(out)


def final_rows(out: Path) -> list[dict[str, Any]]:
    return json.loads((kept.where(out) / "results-final.json").read_text()) if finished(out) else []


def command(size: Size, settings: dict[str, Any], out: Path) -> list[str]:
    cmd = [str(BLOB), "train"]
    return with_settings(cmd, size.settings | settings | {"output_dir": str(out)}, out)


def budget_command(size: Size) -> list[str]:
    return command(
        size,
        {
            "dataset": DEV,
            "method": "mle",
            "seed": 0,
            "max_steps": size.scan_steps,
            "eval_every": size.scan_every,
            "eval_limit": size.dev_limit,
            "eval_samples": [0],
        },
        budget_dir(size),
    )


def train_settings(size: Size, method: str, seed: int) -> dict[str, Any]:
    return {
        "dataset": test_spec(size),
        "method": method,
        "seed": seed,
        "max_steps": budget(size)["steps"],
        "eval_samples": [0],
        "bertscore": True,
        "kl_clock_scale": STUDY_CLOCK,
        "adapter.predict_sample_mode": None,  # as seed 0 ran (generation samples per sequence)
    }


def cell_settings(size: Size, beta: float, scale: float) -> dict[str, Any]:
    return train_settings(size, "blob", size.seeds[0]) | {
        "adapter.prior_std": beta,
        "kl_clock_scale": STUDY_CLOCK * scale,
    }


def posthoc_settings(
    size: Size, method: str, dataset: dict[str, Any], temperature: float | None
) -> dict[str, Any]:
    """Evaluate study 1's seed-0 model of `method` on `dataset` with S samples per input."""
    settings = {
        "dataset": dataset,
        "method": method,
        "seed": size.seeds[0],
        "init_from": str(train_dir(size, method, size.seeds[0])),
        "max_steps": 0,
        "eval_samples": [size.samples],
        "gen_samples": size.samples,
    }
    if method == "mle":
        settings |= {"gen_temperature": temperature, "gen_top_p": TOP_P}
    return settings


@dataclass
class Job:
    name: str
    part: str
    out: Path
    make: Callable[[], list[str]]  # the command, built when the job starts
    deps: tuple[str, ...] = ()


def jobs(size: Size) -> dict[str, Job]:
    """Every run of the study, in the order they start (those that unlock others first,
    the long independent ones last)."""
    s0 = size.seeds[0]
    out: list[Job] = [Job("budget", "budget", budget_dir(size), lambda: budget_command(size))]

    def train(method: str, seed: int) -> Job:
        return Job(
            f"{method}-s{seed}",
            "nonsampling",
            train_dir(size, method, seed),
            lambda: command(
                size, train_settings(size, method, seed), train_dir(size, method, seed)
            ),
            ("budget",),
        )

    out += [train("mle", s0), train("blob", s0)]
    dev = "match-blob"
    out.append(
        Job(
            dev,
            "sampling",
            match_dir(size, "blob"),
            lambda: command(
                size,
                posthoc_settings(size, "blob", match_spec(size), None),
                match_dir(size, "blob"),
            ),
            (f"blob-s{s0}",),
        )
    )
    for t in size.temperatures:
        out.append(
            Job(
                f"match-mle-t{t:g}",
                "sampling",
                match_dir(size, "mle", t),
                lambda t=t: command(
                    size,
                    posthoc_settings(size, "mle", match_spec(size), t),
                    match_dir(size, "mle", t),
                ),
                (f"mle-s{s0}",),
            )
        )
    out.append(
        Job(
            "sample-blob",
            "sampling",
            sample_dir(size, "blob"),
            lambda: command(
                size,
                posthoc_settings(size, "blob", sample_spec(size), None) | {"bertscore": True},
                sample_dir(size, "blob"),
            ),
            (f"blob-s{s0}",),
        )
    )
    out.append(
        Job(
            "sample-mle",
            "sampling",
            sample_dir(size, "mle"),
            lambda: command(
                size,
                posthoc_settings(size, "mle", sample_spec(size), matched_temperature(size)["t"])
                | {"bertscore": True},
                sample_dir(size, "mle"),
            ),
            (f"mle-s{s0}", dev, *(f"match-mle-t{t:g}" for t in size.temperatures)),
        )
    )
    out += [train(m, s) for s in size.seeds[1:] for m in ("mle", "blob")]
    default = train("blob", s0)
    for beta in size.betas:
        for scale in size.scales:
            name, out_dir = f"sens-beta{beta:g}-clock{scale:g}", cell_dir(size, beta, scale)
            if out_dir == default.out:  # study 1's BLoB seed 0, under the sensitivity's name
                out.append(replace(default, name=name, part="sensitivity"))
                continue
            out.append(
                Job(
                    name,
                    "sensitivity",
                    out_dir,
                    lambda b=beta, s=scale: command(
                        size, cell_settings(size, b, s), cell_dir(size, b, s)
                    ),
                    ("budget",),
                )
            )
    return {job.name: job for job in out}


def selected(table: dict[str, Job], only: list[str] | None) -> list[Job]:
    """The jobs of the parts asked for and every job they need, in start order."""
    want = {n for n, j in table.items() if not only or j.part in only}
    stack = list(want)
    while stack:
        for dep in table[stack.pop()].deps:
            if dep not in want:
                want.add(dep)
                stack.append(dep)
    seen, ordered = set(), []
    for name, job in table.items():
        if name in want and job.out not in seen:  # the default sensitivity cell is a study-1 run
            seen.add(job.out)
            ordered.append(job)
    return ordered


def schedule(todo: list[Job], table: dict[str, Job], slots: int, threads: int = 1) -> int:
    """Run the jobs, up to `slots` at a time with `threads` each, each when its
    dependencies have finished; returns the number that failed or could not start."""
    pending = [j for j in todo if not finished(j.out)]
    # sampling runs start from a trained run's adapter (init_from): a run kept from an
    # earlier session without its adapter is trained again first
    adapter_deps = {d for j in pending if j.part == "sampling" for d in j.deps}
    adapter_deps = {d for d in adapter_deps if table[d].part != "sampling"}
    again = [table[d] for d in adapter_deps if not kept.finished_here(table[d].out)]
    pending = [j for j in todo if j in again or j in pending]

    def ready(dep: str) -> bool:
        out = table[dep].out
        return kept.finished_here(out) or (dep not in adapter_deps and finished(out))

    failed: set[str] = set()
    with ThreadPoolExecutor(max_workers=slots) as pool:
        running: dict[Any, Job] = {}
        while pending or running:
            for job in list(pending):
                if len(running) >= slots:
                    break
                if any(d in failed for d in job.deps):
                    pending.remove(job)
                    failed.add(job.name)
                    print(
                        f"skip {job.name}: {', '.join(d for d in job.deps if d in failed)} failed"
                    )
                    continue
                if all(ready(d) for d in job.deps):
                    pending.remove(job)
                    try:
                        cmd = job.make()
                    except Exception as err:  # e.g. the budget scan's curve is unusable
                        print(f"skip {job.name}: {err}", flush=True)
                        failed.add(job.name)
                        continue
                    need = job.name in adapter_deps
                    running[pool.submit(run_once, job.name, cmd, job.out, need, threads)] = job
            if not running:
                for job in pending:
                    print(f"skip {job.name}: its dependencies did not finish", flush=True)
                    failed.add(job.name)
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                job = running.pop(fut)
                ok = fut.result()
                log = job.out.parent / f"{job.out.name}.log"
                print(f"{'done' if ok else 'FAILED'} {job.name} (log {log})", flush=True)
                if not ok:
                    failed.add(job.name)
    return len(failed)


# --------------------------------------------------------------------------- choices


def budget(size: Size) -> dict[str, Any]:
    """The scan's curve and the budget it gives: the regime rule of the classification
    tasks (regime_scan.choose_budget) on ROUGE-L: the first scored step within MARGIN
    ROUGE-L points of the best, but not before the dev NLL is within NLL_NEAR of its
    lowest. `complete` is False when the NLL still falls at the scan's last point: the
    budget is then the scan's length, capped by cost, not where the model stops learning."""
    out = budget_dir(size)
    if not finished(out):
        raise RuntimeError(f"the budget scan {out} has not finished")
    points = []
    log = kept.where(out) / "eval_log.jsonl"
    if log.is_file():
        points += [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    last = final_rows(out)[0]
    if not points or points[-1]["step"] != last["steps"]:
        points.append({"step": last["steps"], **last})
    chosen, lowest, complete = regime_scan.choose_budget(points, "rougeL", MARGIN)
    best = max(points, key=lambda p: p["rougeL"])
    keys = ("rouge1", "rouge2", "rougeL", "nll")
    return {
        "steps": int(chosen["step"]),
        "best_rougeL": best["rougeL"],
        "best_step": int(best["step"]),
        "min_nll_step": int(lowest["step"]),
        "complete": complete,
        "curve": [{"step": p["step"], **{k: p[k] for k in keys}} for p in points],
    }


def matched_temperature(size: Size) -> dict[str, Any]:
    """The MLE temperature whose dev disagreement matches BLoB's: linear interpolation
    between the two grid temperatures that bracket it, else the nearest (flagged)."""
    target = _disagreement(match_dir(size, "blob"))
    if target is None:
        raise RuntimeError(f"{match_dir(size, 'blob')} has not finished")
    grid = []
    for t in size.temperatures:
        d = _disagreement(match_dir(size, "mle", t))
        if d is None:
            raise RuntimeError(f"{match_dir(size, 'mle', t)} has not finished")
        grid.append((t, d))
    for (t0, d0), (t1, d1) in zip(grid, grid[1:], strict=False):
        if min(d0, d1) <= target <= max(d0, d1) and d0 != d1:
            t = t0 + (target - d0) / (d1 - d0) * (t1 - t0)
            return {"t": round(t, 3), "blob": target, "grid": grid, "inside": True}
    t, _ = min(grid, key=lambda g: abs(g[1] - target))
    return {"t": t, "blob": target, "grid": grid, "inside": False}


def _disagreement(out: Path) -> float | None:
    rows = [r for r in final_rows(out) if r["n_samples"] > 0]
    return rows[0]["disagreement"] if rows else None


def estimate(size: Size, steps: int) -> dict[str, float]:
    """Machine hours by the cost model, for a budget of `steps` (see the constants)."""
    scorings = size.scan_steps // size.scan_every
    scan = LOAD_S + size.scan_steps * STEP_S + scorings * size.dev_limit * (GREEDY_S + NLL_S)
    new_cells = sum(
        cell_dir(size, b, s).name.startswith("sens-") for b in size.betas for s in size.scales
    )
    n_train = 2 * len(size.seeds) + new_cells
    test = size.test_dialogues * (GREEDY_S + 3 * NLL_S)
    train = n_train * (LOAD_S + steps * STEP_S + test)
    per = {"blob": size.samples, "mle": 1}  # weight draws of the reference NLL
    match = sum(
        LOAD_S + size.match_dialogues * (size.samples * SAMPLE_S + per[m] * NLL_S)
        for m in ["blob"] + ["mle"] * len(size.temperatures)
    )
    sample = sum(
        LOAD_S + size.sample_dialogues * (size.samples * SAMPLE_S + 3 * per[m] * NLL_S)
        for m in ("blob", "mle")
    )
    return {"scan_h": scan / 3600, "rest_run_h": (train + match + sample) / 3600,
            "machine_h": (scan + (train + match + sample) / 2) / 3600}  # fmt: skip


# --------------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace) -> int:
    size = DRY if args.dry_run else REAL
    worst = estimate(size, size.scan_steps)
    print(
        f"cost model: at most {worst['machine_h']:.1f} machine-hours with {args.jobs} runs at a "
        f"time (budget = the whole scan, {size.scan_steps} steps; limit {LIMIT_H:g} h)",
        flush=True,
    )
    if finished(budget_dir(size)):
        b = budget(size)
        print(
            f"budget: {b['steps']} steps; estimate {estimate(size, b['steps'])['machine_h']:.1f} h"
        )
    table = jobs(size)
    failed = schedule(selected(table, args.only), table, args.jobs, args.threads)
    for line in posterior_lines(size):
        print(line)
    if args.dry_run:
        cmd_report(args)
    return 1 if failed else 0


# --------------------------------------------------------------------------- report


def state(row: dict[str, Any]) -> str:
    from blob_lora.kl_plan import init_sigma_mean
    from blob_lora.posterior_stats import COLLAPSE_RATIO, FORMED_FACTOR

    if row.get("sigma_mean") is None:
        return "-"
    if row["sigma_ratio_median"] > COLLAPSE_RATIO:
        return "collapsed"
    if row["sigma_mean"] < FORMED_FACTOR * init_sigma_mean(DEFAULT_EPS):
        return "not formed"
    return "formed"


def posterior_lines(size: Size) -> list[str]:
    """The sigma statistics of every finished BLoB run of the study."""
    from blob_lora.kl_plan import init_sigma_mean

    sigma0 = init_sigma_mean(DEFAULT_EPS)
    runs = [(f"study 1 BLoB seed {s}", train_dir(size, "blob", s)) for s in size.seeds]
    runs += [
        (f"sensitivity beta {b:g} clock {c:g}x", cell_dir(size, b, c))
        for b in size.betas
        for c in size.scales
        if cell_dir(size, b, c).name.startswith("sens-")
    ]
    runs += [
        ("study 3 BLoB dev", match_dir(size, "blob")),
        ("study 3 BLoB test", sample_dir(size, "blob")),
    ]
    lines = []
    for label, out in runs:
        rows = final_rows(out)
        for r in rows[:1]:
            spread = [x["disagreement"] for x in rows if x.get("disagreement") is not None]
            lines.append(
                f"posterior, {label}: mean sigma {r['sigma_mean']:.4f} "
                f"({r['sigma_mean'] / sigma0:.1f}x its init {sigma0:.4f}), median sigma/|mu| "
                f"{r['sigma_ratio_median']:.3g}: {state(r)}"
                + (f"; samples' mean disagreement {spread[0]:.3f}" if spread else "")
                + (" (samples barely differ)" if spread and spread[0] < FLAT else "")
            )
    return lines


def _f(x: Any, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _row(r: dict[str, Any], study: str, eval_set: str) -> dict[str, Any]:
    keys = ("rouge1", "rouge2", "rougeL", "bertscore_f1", "nll", "unc_auroc", "aurc",
            "disagreement", "rougeL_spread", "bertscore_f1_spread", "rougeL_oracle",
            "rouge1_mean_ref", "rouge2_mean_ref", "rougeL_mean_ref", "sigma_mean",
            "sigma_ratio_median", "gen_temperature", "gen_top_p")  # fmt: skip
    return {
        "model": r["model"],
        "dataset": "dialogsum",
        "method": r["method"],
        "n_samples": r["n_samples"],
        "seed": r["seed"],
        "study": study,
        "eval_set": eval_set,
        "n_examples": r["n_examples"],
        "sampler": r["sampler"],
        "steps": r["steps"],
        **{k: r.get(k) for k in keys},
    }


def cmd_report(args: argparse.Namespace) -> int:
    size = DRY if args.dry_run else REAL
    size.results.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    md = [
        f"# Summarization on DialogSum: BLoB against MLE ({MODEL})"
        + (
            " - DRY RUN, toy size (the text below describes the real sizes)" if args.dry_run else ""
        ),
        "",
        (__doc__ or "")[(__doc__ or "").index("0. budget") :].strip(),
        "",
        f"Command: `.venv/bin/python -m experiments.generation_study run` then `report`. "
        f"{measured_on(None)} Runs had one thread each, two at a time, until 2026-12-03; from "
        f"then one at a time on two threads. Settings: {json.dumps(size.settings)}.",
        "",
    ]
    test_set = f"test, first {size.test_dialogues} dialogues x 3 references"
    # 0. budget
    try:
        b = budget(size)
    except RuntimeError as err:
        b = None
        md += ["## 0. Budget", "", f"Not available: {err}.", ""]
    if b is not None:
        md += _budget_md(size, b)
        _plot_budget(b, size.results / "generation_budget.png")
    # 1. non-sampling
    study1 = []
    for method in ("mle", "blob"):
        for seed in size.seeds:
            study1 += [
                _row(r, "nonsampling", test_set) for r in final_rows(train_dir(size, method, seed))
            ]
    rows += study1
    md += [
        f"## 1. Non-sampling: N=0 (greedy) on {test_set}",
        "",
        "| method | seed | ROUGE-1 | ROUGE-2 | ROUGE-L | BERTScore F1 | NLL | mean sigma | "
        "median sigma/abs(mu) | posterior |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in study1:
        md.append(
            f"| {r['method']} | {r['seed']} | {r['rouge1']:.2f} | {r['rouge2']:.2f} | "
            f"{r['rougeL']:.2f} | {_f(r['bertscore_f1'])} | {r['nll']:.4f} | "
            f"{_f(r['sigma_mean'], 4)} | {_f(r['sigma_ratio_median'], 3)} | {state(r)} |"
        )
    for method in ("mle", "blob"):
        group = [r for r in study1 if r["method"] == method]
        if len(group) > 1:
            cells = []
            for k in ("rouge1", "rouge2", "rougeL", "bertscore_f1", "nll"):
                v = np.array([r[k] for r in group if r[k] is not None], dtype=float)
                d = 4 if k == "nll" else 2
                cells.append(f"{v.mean():.{d}f} ± {v.std(ddof=1):.{d}f}" if v.size > 1 else "–")
            md.append(f"| {method} | mean ± std ({len(group)}) | " + " | ".join(cells) + " | | | |")
    md.append("")
    # 2. sensitivity
    md += _sensitivity(size)
    if b is not None:
        md += _gamma_axis(b["steps"])
    # 3. sampling
    md_sampling, sample_rows = _sampling(size)
    rows += sample_rows
    md += md_sampling
    lines = posterior_lines(size)
    md += ["## Is the posterior there?", "", *(f"- {x}" for x in lines), ""]
    (size.results / "generation.json").write_text(json.dumps(rows, indent=1) + "\n")
    (size.results / "generation.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


def _budget_md(size: Size, b: dict[str, Any]) -> list[str]:
    """The budget section of generation.md."""
    return [
        "## 0. Budget (MLE, dev carve, N=0 greedy)",
        "",
        f"{size.dev_limit} dev dialogues (20% of the training split, seed 7; drawn with "
        f"seed 0). Budget: **{b['steps']} steps** (first within {MARGIN:g} ROUGE-L point "
        f"of the best, {b['best_rougeL']:.2f} at step {b['best_step']}, once the dev NLL "
        f"is within {regime_scan.NLL_NEAR:g} nats of its lowest); lowest dev NLL at step "
        f"{b['min_nll_step']}."
        + (
            ""
            if b["complete"]
            else " **The scan is too short:** its NLL still falls at its last point, so "
            "the budget is bounded by the scan's length, which the study's cost set, not by "
            "the step where MLE stops learning."
        ),
        "",
        "| step | ROUGE-1 | ROUGE-2 | ROUGE-L | NLL |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {p['step']} | {p['rouge1']:.2f} | {p['rouge2']:.2f} | {p['rougeL']:.2f} | "
            f"{p['nll']:.4f} |"
            for p in b["curve"]
        ),
        "",
        "![budget scan](generation_budget.png)",
        "",
    ]


def _sensitivity(size: Size) -> list[str]:
    cells, curves = [], {}
    for beta in size.betas:
        for scale in size.scales:
            out = cell_dir(size, beta, scale)
            for r in final_rows(out)[:1]:
                metrics = kept.where(out) / "metrics.jsonl"
                log = [json.loads(x) for x in metrics.read_text().splitlines()]
                curves[(beta, scale)] = (log, state(r))
                last = log[-1]
                plan = json.loads((kept.where(out) / "kl_plan.json").read_text())
                cells.append(
                    {"beta": beta, "clock_scale": scale, "state": state(r), "final_kl": last["kl"],
                     "final_objective": last["nll"] + last["kl_weight"] * last["kl"],
                     "predicted_sigma": plan["predicted_sigma"], **r}
                )  # fmt: skip
    (size.results / "generation_sensitivity.json").write_text(json.dumps(cells, indent=1) + "\n")
    md = [
        f"## 2. Sensitivity: prior std x KL clock (BLoB, seed {size.seeds[0]}, N=0 on the same "
        "test subset)",
        "",
        f"Clock: x kl_clock_scale {STUDY_CLOCK:g} of the authors' clock (the default when it ran). "
        "Objective: NLL + pi x KL at the last step (pi is 0 after the last KL cycle). "
        "Predicted sigma: the KL plan's closed form, printed when the run started.",
        "",
        "| beta | clock | ROUGE-L | ROUGE-1 | NLL | final KL | predicted sigma | mean sigma | "
        "median sigma/abs(mu) | posterior |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *(
            f"| {c['beta']:g} | {c['clock_scale']:g}x | {c['rougeL']:.2f} | {c['rouge1']:.2f} | "
            f"{c['nll']:.4f} | {c['final_kl']:.4g} | {c['predicted_sigma']:.4f} | "
            f"{c['sigma_mean']:.4f} | {c['sigma_ratio_median']:.3g} | {c['state']} |"
            for c in cells
        ),
        "",
    ]
    if curves:
        _plot_sensitivity(curves, size.results / "generation_sensitivity.png")
        md += ["![KL, sigma/mu and objective trajectories](generation_sensitivity.png)", ""]
    return md


GAMMAS = (4.0, 8.0, 12.0)  # the follow-up study's axis (DESIGN.md, section 2)


def _gamma_axis(steps: int) -> list[str]:
    """What the follow-up study's gamma does under the authors' code, computed, not trained:
    gamma only sets the cycle M = 100 N^(pi/gamma) / P / batch, the cycle sets how often the
    KL's SGD steps land, and those steps (the clock) are all that moves sigma."""
    from blob_lora.generation.data import dialogsum_file
    from blob_lora.kl_plan import (
        AUTHORS,
        KLSchedule,
        init_sigma_mean,
        plan_authors,
        reference_clock,
        reference_prediction,
    )
    from blob_lora.posterior_stats import FORMED_FACTOR

    lines = dialogsum_file("train").read_text().splitlines()
    n_train = sum(1 for x in lines if x.strip())
    sigma0 = init_sigma_mean(DEFAULT_EPS)
    batch = SETTINGS["batch_size"]
    warmup = int(SETTINGS["warmup_ratio"] * steps)

    def verdict(sigma: float, clock: float) -> str:
        if clock < 1e-12:
            return "KL never acts: sigma stays at its init (the posterior collapses onto its mean)"
        if sigma < FORMED_FACTOR * sigma0:
            return f"not formed (under {FORMED_FACTOR:g}x init)"
        return "near the prior" if sigma > DEFAULT_BETA / 2 else "formed"

    md = [
        "### The follow-up study's gamma axis, as the authors' code reads it (computed)",
        "",
        f"gamma enters the authors' code only in the KL cycle, M = int(100 N^(pi/gamma) / P / "
        f"batch), with N = {n_train} DialogSum training dialogues. What moves sigma is the "
        f"KL's SGD steps (the clock, kl_lr x sum of pi x LR factor), so gamma acts only through "
        f"how many cycles end inside a run. Predicted sigma: the KL steps alone from sigma0 "
        f"{sigma0:.4f} (`kl_plan.reference_prediction` / `plan_authors`; in the runs above the "
        f"prediction matches the measured mean sigma). |mu| pull: the factor the same steps "
        f"alone put on the means (prior std {DEFAULT_BETA:g}).",
        "",
        "| gamma | run | M (steps) | whole cycles | clock | predicted sigma | x init | "
        "abs(mu) pull | reading |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    ref0 = AUTHORS["causal-lm"]
    for gamma in GAMMAS:
        ref = replace(ref0, gamma=gamma)
        c, cycles = reference_clock(ref, n_train)
        sigma, shrink = reference_prediction(ref, n_train, DEFAULT_BETA, sigma0)
        md.append(
            f"| {gamma:g} | authors' ({ref.label}, {ref.optimizer_steps} optimizer steps) | "
            f"{ref.cycle_length(n_train)} | {cycles} | {c:.4f} | {sigma:.4f} | "
            f"{sigma / sigma0:.1f} | {shrink:.2f} | {verdict(sigma, c)} |"
        )
        schedule = KLSchedule("blob", n_train, batch, gamma)
        m = schedule.cycle_length
        plan = plan_authors(schedule, ref0.kl_lr, steps, warmup, DEFAULT_BETA, sigma0)
        reading = verdict(plan.predicted_sigma, plan.clock)
        if m > steps:  # run/prepare refuses such a run before anything is written
            reading = "KL never acts; `blob train` refuses the run"
        md.append(
            f"| {gamma:g} | this study's ({steps} steps, batch {batch}, kl_plan=authors) | {m} | "
            f"{steps // m} | {plan.clock:.4f} | {plan.predicted_sigma:.4f} | "
            f"{plan.predicted_sigma / sigma0:.1f} | {plan.mean_shrink:.2f} | {reading} |"
        )
    return md + [""]


def _sampling(size: Size) -> tuple[list[str], list[dict[str, Any]]]:
    md = [
        f"## 3. Posterior sampling against decoding noise ({size.samples} samples per dialogue)",
        "",
    ]
    try:
        match = matched_temperature(size)
    except RuntimeError as err:
        return md + [f"Not available: {err}.", ""], []
    where = "interpolated inside the grid" if match["inside"] else "the nearest: OUTSIDE the grid"
    md += [
        f"Matching on the first {size.match_dialogues} dialogues of DialogSum validation: BLoB's "
        f"mean pairwise disagreement {match['blob']:.3f}; MLE (top-p {TOP_P:g}) temperature "
        f"**{match['t']:g}** ({where}).",
        "",
        "| MLE temperature | disagreement |",
        "|---:|---:|",
        *(f"| {t:g} | {d:.3f} |" for t, d in match["grid"]),
        "",
    ]
    if match["blob"] < FLAT:
        md += [
            f"**Warning**: BLoB's weight samples barely differ (mean disagreement "
            f"{match['blob']:.3f} < {FLAT:g}): the posterior gives no spread of outputs, and "
            "this comparison says nothing about posterior sampling.",
            "",
        ]
    used = _temperature(sample_dir(size, "mle"), "mle").get("gen_temperature")
    if used is not None and abs(used - match["t"]) > 1e-9:
        md += [
            f"**Warning**: the MLE sample run used T={used:g}, not the matched {match['t']:g} "
            f"(the grid changed after it finished): delete {sample_dir(size, 'mle')} and run again.",
            "",
        ]
    eval_set = f"test, first {size.sample_dialogues} dialogues x 3 references"
    rows, per = [], {}
    for method in ("blob", "mle"):
        out = sample_dir(size, method)
        for r in final_rows(out):
            rows.append(_row(r | _temperature(out, method), "sampling", eval_set))
        label = f"dialogsum-test{size.sample_dialogues}"
        path = kept.where(out) / "predictions" / f"final-{label}-N{size.samples}.jsonl"
        if path.is_file():
            per[method] = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    md += [
        f"On {eval_set}: expected metric over samples, its spread (mean per-dialogue std), the "
        "best of S (oracle), and whether the disagreement flags a low expected ROUGE-L (AUROC, "
        "higher is better; AURC with risk 1 - ROUGE-L, lower is better).",
        "",
        "| method | noise | ROUGE-L | spread | oracle | ROUGE-1 | ROUGE-2 | BERTScore F1 | spread | "
        "NLL | disagreement | unc AUROC | AURC |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        noise = "weights, greedy" if r["sampler"] == "weights" else (
            f"T={r['gen_temperature']:g}, top-p {r['gen_top_p']:g}")  # fmt: skip
        md.append(
            f"| {r['method']} | {noise} | {r['rougeL']:.2f} | {_f(r['rougeL_spread'])} | "
            f"{_f(r['rougeL_oracle'])} | {r['rouge1']:.2f} | {r['rouge2']:.2f} | "
            f"{_f(r['bertscore_f1'])} | {_f(r['bertscore_f1_spread'])} | {r['nll']:.4f} | "
            f"{_f(r['disagreement'], 3)} | {_f(r['unc_auroc'], 3)} | {_f(r['aurc'], 3)} |"
        )
    md.append("")
    if set(per) == {"blob", "mle"}:
        md += _paired_bootstrap(per["blob"], per["mle"]) + [""]
    if per:
        greedy = {}
        for method in per:
            n0 = kept.where(train_dir(size, method, size.seeds[0])) / "predictions"
            path = n0 / f"final-dialogsum-test{size.test_dialogues}-N0.jsonl"
            if path.is_file():
                items = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
                items = [x for x in items if x["index"] < size.sample_dialogues]
                greedy[method] = 100 * float(np.mean([x["rougeL"] for x in items]))
        _plot_sampling(per, greedy, match["t"], size.results / "generation_sampling.png")
        md += ["![per-sample ROUGE-L and BERTScore, risk-coverage](generation_sampling.png)", ""]
    return md, rows


def _paired_bootstrap(blob: list[dict], mle: list[dict], draws: int = 2000) -> list[str]:
    """95% intervals of BLoB - MLE over dialogues resampled with replacement (the same
    dialogues for both), since one seed on a few dozen dialogues leaves AUROC wide."""
    from blob_lora.generation.metrics import uncertainty_auroc

    def arrays(items: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        by_index = sorted(items, key=lambda x: x["index"])
        return (
            np.array([x["disagreement"] for x in by_index]),
            np.array([np.mean(x["rougeL"]) for x in by_index]),
        )

    (db, qb), (dm, qm) = arrays(blob), arrays(mle)
    rng = np.random.default_rng(0)
    auc, rouge = [], []
    for _ in range(draws):
        i = rng.integers(0, qb.size, qb.size)
        rouge.append(100 * (qb[i].mean() - qm[i].mean()))
        try:
            auc.append(uncertainty_auroc(db[i], qb[i]) - uncertainty_auroc(dm[i], qm[i]))
        except ValueError:  # a resample with every dialogue of one quality
            continue
    lo_a, hi_a = np.percentile(auc, [2.5, 97.5])
    lo_r, hi_r = np.percentile(rouge, [2.5, 97.5])
    return [
        f"Paired bootstrap over the {qb.size} dialogues ({draws} resamples), BLoB - MLE: "
        f"unc AUROC {np.mean(auc):+.3f} (95% interval {lo_a:+.3f} to {hi_a:+.3f}; BLoB ahead "
        f"in {100 * np.mean(np.array(auc) > 0):.0f}% of resamples), expected ROUGE-L "
        f"{np.mean(rouge):+.2f} ({lo_r:+.2f} to {hi_r:+.2f})."
    ]


def _temperature(out: Path, method: str) -> dict[str, Any]:
    if method != "mle":
        return {}
    cfg = json.loads((kept.where(out) / "run_config.json").read_text())
    return {"gen_temperature": cfg["gen_temperature"], "gen_top_p": cfg["gen_top_p"]}


# --------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_budget(b: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    steps = [p["step"] for p in b["curve"]]
    axes[0].plot(steps, [p["rougeL"] for p in b["curve"]], "o-", label="ROUGE-L")
    axes[0].plot(steps, [p["rouge1"] for p in b["curve"]], "s--", label="ROUGE-1")
    axes[0].set_ylabel("dev ROUGE F1 (%)")
    axes[0].legend(fontsize=8)
    axes[1].plot(steps, [p["nll"] for p in b["curve"]], "o-", color="tab:red")
    axes[1].set_ylabel("dev reference NLL / token")
    for ax in axes:
        ax.axvline(b["steps"], color="grey", lw=0.8, ls=":")
        ax.set_xlabel("step")
    fig.suptitle(f"MLE budget scan: chosen {b['steps']} steps", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_sensitivity(curves: dict, path: Path) -> None:
    from blob_lora.posterior_stats import COLLAPSE_RATIO

    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    styles = {0.5: ":", 1.0: "-", 2.0: "--"}
    colors = {0.1: "tab:blue", 0.2: "tab:orange", 0.3: "tab:green"}
    for (beta, scale), (log, st) in sorted(curves.items()):
        label = f"beta {beta:g}, clock {scale:g}x" + ("" if st == "formed" else f" ({st})")
        style = {"linestyle": styles.get(scale, "-."), "color": colors.get(beta, "black")}
        series = {
            "kl": [r["kl"] for r in log],
            "sigma_ratio_median": [r.get("sigma_ratio_median") for r in log],
            "objective": [r["nll"] + r["kl_weight"] * r["kl"] for r in log],
            "sigma_mean": [r.get("sigma_mean") for r in log],
        }
        steps = [r["step"] for r in log]
        for ax, (key, ys) in zip(axes, series.items(), strict=True):
            ax.plot(steps, ys, label=label if key == "kl" else None, **style)
            if st == "collapsed":
                ax.plot(steps[-1], ys[-1], "x", ms=9, color=style["color"])
    axes[0].set_ylabel("KL (nats)")
    axes[0].set_yscale("log")
    axes[1].set_ylabel("median sigma/|mu|")
    axes[1].set_yscale("log")
    axes[1].axhline(COLLAPSE_RATIO, color="grey", lw=0.8)
    axes[1].text(0.02, 0.95, "x / above the line: collapsed", transform=axes[1].transAxes,
                 fontsize=7, va="top")  # fmt: skip
    axes[2].set_ylabel("NLL + pi x KL")
    axes[2].set_yscale("log")
    axes[3].set_ylabel("mean sigma")
    for ax in axes:
        ax.set_xlabel("step")
    # sigma's panel is empty at the upper left (sigma starts at its init); the KL panel is full
    axes[3].legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _kde(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian KDE with Scott's bandwidth (a point mass for constant values)."""
    v = np.asarray(values, dtype=float)
    bw = max(1.06 * v.std() * v.size ** (-1 / 5), 0.5)
    return np.exp(-0.5 * ((grid[:, None] - v[None]) / bw) ** 2).sum(1) / (
        v.size * bw * np.sqrt(2 * np.pi)
    )


def _plot_sampling(per: dict, greedy: dict, temperature: float, path: Path) -> None:
    from blob_lora.generation.metrics import aurc, risk_coverage

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    names = {
        "blob": "BLoB: weight samples, greedy",
        "mle": f"MLE: T={temperature:g}, top-p {TOP_P:g}",
    }
    colors = {"blob": "tab:orange", "mle": "tab:blue"}
    grid = np.linspace(0, 100, 401)
    for method, items in per.items():
        c = colors[method]
        for ax, key in zip(axes[:2], ("rougeL", "bertscore_f1"), strict=True):
            values = [100 * v for x in items for v in (x.get(key) or [])]
            if values:
                lo, hi = min(values) - 10, max(values) + 10
                g = grid[(grid >= lo) & (grid <= hi)]
                ax.plot(g, _kde(np.array(values), g), color=c, label=names[method])
        if method in greedy:
            axes[0].axvline(greedy[method], color=c, ls=":", lw=1)
        u = [x["disagreement"] for x in items]
        risk = [1 - float(np.mean(x["rougeL"])) for x in items]
        cov, sel = risk_coverage(u, risk)
        axes[2].plot(cov, sel, color=c, label=f"{method}: AURC {aurc(u, risk):.3f}")
    axes[0].set_xlabel("per-sample ROUGE-L F1 (%); dotted: N=0 greedy mean")
    axes[1].set_xlabel("per-sample BERTScore F1 (%, MiniLM)")
    for ax in axes[:2]:
        ax.set_ylabel("density")
    axes[2].set_xlabel("coverage (most certain first, by disagreement)")
    axes[2].set_ylabel("selective risk (1 - ROUGE-L)")
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--only", nargs="*", choices=PARTS, help="parts (with the runs they need)")
    run.add_argument("--jobs", type=int, default=2, help="runs at a time")
    run.add_argument(
        "--threads", type=int, default=1,
        help="torch threads per run (--jobs 1 --threads 2: a Gemma run's peak memory, about "
        "12 GB, twice at once overran 23 GB; one run on two threads trains as fast in all)",
    )  # fmt: skip
    run.add_argument("--dry-run", action="store_true", help="toy size under /tmp/genstudy-dry")
    report = sub.add_parser("report")
    report.add_argument("--dry-run", action="store_true", help="report the toy-size runs")
    args = parser.parse_args()
    return cmd_run(args) if args.command == "run" else cmd_report(args)


if __name__ == "__main__":
    raise SystemExit(main())
