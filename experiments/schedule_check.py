"""Which KL schedule should be the default? Measured on dev splits carved from train.

    .venv/bin/python -m experiments.schedule_check run [--only mrpc:budget ...]  # resumable
    .venv/bin/python -m experiments.schedule_check report  # -> experiments/results/schedule_check.*

BLoB under each candidate, at the task's scan budget (experiments/regime_scan.py, same
lr, steps and batch as the MLE scan, which is the MLE row here):

- ``authors``: the authors' M (from gamma) and kl_lr, as their code runs at our budget;
- ``budget``: the budget-aware plan, the authors' KL clock in this run (kl_plan.py);
- ``budget-x0.25``, ``budget-x0.2``, ``budget-x0.1``: a quarter, a fifth, a tenth of that
  clock (less shrinkage of the means; a tenth is about the clock the authors' own M and
  kl_lr give this run);
- ``elbo``: one AdamW on NLL + KL/N for every parameter, G included.

The default is the candidate with the lowest dev NLL at N=10 among those whose dev
accuracy is at most 1 point below MLE's (the paper's claim: calibration at no real cost in
accuracy), judged per task and then by the mean rank over tasks. Rows measured at another
step count than the task's scan has now are stale: listed apart, never ranked. Each row
names its training noise; rows measured before flipout became the default (2026-12-02)
were per-sequence (``NOISE_BEFORE_FLIPOUT``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments import kept, regime_scan
from experiments.dev_runs import measured_on, run_once, with_settings

ROOT = regime_scan.ROOT
RUNS = ROOT / "runs" / "schedule-check"
RESULTS = ROOT / "experiments" / "results"
CANDIDATES = {
    "authors": {"kl_plan": "authors"},
    "budget": {"kl_plan": "budget", "kl_clock_scale": 1.0},
    "budget-x0.25": {"kl_plan": "budget", "kl_clock_scale": 0.25},
    "budget-x0.2": {"kl_plan": "budget", "kl_clock_scale": 0.2},
    "budget-x0.1": {"kl_plan": "budget", "kl_clock_scale": 0.1},
    "elbo": {"optim_scheme": "elbo", "kl_schedule": "elbo"},
}
TASKS = ["mrpc", "trec", "ag-news"]
NOISE_BEFORE_FLIPOUT = "sequence"  # the committed rows without a noise field predate flipout


def out_dir(task: str, candidate: str) -> Path:
    return RUNS / f"{task}-{candidate}"


def command(task: str, candidate: str) -> list[str]:
    lr = next(iter(regime_scan.SCANS[task]))
    base = regime_scan.command(task, lr)
    extra = {
        "method": "blob",
        "eval_every": 0,
        "eval_samples": [0, 10],
        "output_dir": str(out_dir(task, candidate)),
        **CANDIDATES[candidate],
    }
    return with_settings(base, extra, out_dir(task, candidate))


def cmd_run(args: argparse.Namespace) -> int:
    failed = 0
    for task in TASKS:
        for cand in CANDIDATES:
            if args.only and f"{task}:{cand}" not in args.only:
                continue
            failed += not run_once(f"{task} {cand}", command(task, cand), out_dir(task, cand))
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    """Rows from the runs, here or kept; a run in neither (measured before runs were kept)
    keeps its rows from the committed schedule_check.json."""
    committed = RESULTS / "schedule_check.json"
    earlier = json.loads(committed.read_text()) if committed.is_file() else []

    def carried(task: str, cand: str) -> list[dict]:
        return [r for r in earlier if r["task"] == task and r["candidate"] == cand]

    rows, stale = [], []
    for task in TASKS:
        lr = next(iter(regime_scan.SCANS[task]))
        steps = regime_scan.SCANS[task][lr][0]
        cands = []
        for cand in CANDIDATES:
            out = kept.where(out_dir(task, cand))
            if (out / "results-final.json").is_file():
                noise = json.loads((out / "run_config.json").read_text())["adapter"]["sample_mode"]
                cands += [
                    {"task": task, "candidate": cand, **r, "noise": noise}
                    for r in json.loads((out / "results-final.json").read_text())
                ]
            else:
                cands += [{"noise": NOISE_BEFORE_FLIPOUT} | r for r in carried(task, cand)]
        stale += [r for r in cands if r["steps"] != steps]
        cands = [r for r in cands if r["steps"] == steps]
        # MLE at the candidates' budget: the scan may have been lengthened since they ran
        mle = kept.where(regime_scan.scan_dir(task, lr)) / "results-final.json"
        scan = json.loads(mle.read_text())[0] if mle.is_file() else None
        if scan and scan["steps"] == steps:
            rows.append({"task": task, "candidate": "mle", **scan, "noise": "-"})
        else:
            old = carried(task, "mle")
            rows += [r for r in old if r["steps"] == steps]
            stale += [r for r in old if r["steps"] != steps]
        rows += cands
    lines = [
        "| task | candidate | noise | steps | N | ACC % | ECE % | NLL | mean sigma | "
        "median sigma/abs(mu) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows + stale:
        sig = (
            f"{r['sigma_mean']:.4f} | {r['sigma_ratio_median']:.3g}"
            if "sigma_mean" in r
            else "– | –"
        )
        name = r["candidate"] + (" (stale)" if r in stale else "")
        lines.append(
            f"| {r['task']} | {name} | {r.get('noise', '-')} | {r['steps']} | "
            f"{r['n_samples']} | {r['acc']:.2f} | {r['ece']:.2f} | {r['nll']:.4f} | {sig} |"
        )
    ranks: dict[str, list[int]] = {}
    for task in TASKS:
        at10 = [r for r in rows if r["task"] == task and r["n_samples"] == 10]
        mle = [r for r in rows if r["task"] == task and r["candidate"] == "mle"]
        if not at10 or not mle:
            continue
        floor = mle[0]["acc"] - 1.0
        ok = sorted((r for r in at10 if r["acc"] >= floor), key=lambda r: r["nll"])
        for rank, r in enumerate(ok, 1):
            ranks.setdefault(r["candidate"], []).append(rank)
        listed = ", ".join(f"{r['candidate']} {r['nll']:.4f}" for r in ok) or "none"
        lines.append(
            f"\n{task}: N=10 dev NLL of the candidates within 1 ACC point of MLE "
            f"({mle[0]['acc']:.2f}), best first: {listed}"
        )
    if ranks:
        mean = sorted(((sum(v) / len(v), c) for c, v in ranks.items()))
        lines.append(
            "\nmean rank over the tasks where a candidate qualifies: "
            + ", ".join(f"{c} {m:.2f} ({len(ranks[c])} tasks)" for m, c in mean)
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    if stale:
        lines.append(
            "\nstale: measured at another step count than the task's scan has now; kept for "
            "the record, not ranked"
        )
    (RESULTS / "schedule_check.json").write_text(json.dumps(rows + stale, indent=1) + "\n")
    (RESULTS / "schedule_check.md").write_text(
        "# KL schedule on dev splits (BLoB, MiniLM)\n\n"
        + measured_on()
        + "\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print("\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--only", nargs="*", help="task:candidate")
    sub.add_parser("report")
    args = parser.parse_args()
    return cmd_run(args) if args.command == "run" else cmd_report(args)


if __name__ == "__main__":
    raise SystemExit(main())
