"""BLoB that keeps its accuracy: the settings that set its calibration / accuracy trade-off,
searched on dev carves in the overconfident regime (issue 29), against MLE and temperature
scaling on the same rows.

    .venv/bin/python -m experiments.tradeoff run [--tasks mrpc] [--seeds 0]   # resumable
    .venv/bin/python -m experiments.tradeoff report   # -> experiments/results/tradeoff.*

Each task trains on its dev carve's training part at its overconfident budget (the regime
scan's rule, bench/results/regime.json), with 20% of those rows held out for the
temperature (calib_fraction 0.2, the same rows for every setting), and is scored on the
dev carve (the validation split is never read). Every setting is a BLoB run on the product
defaults with one change; each reports N=0 and N=10. The axes, from issue 13's findings:
the KL clock sets sigma, the prior std beta sets the KL's pull on the means (as 1/beta^2),
`kl_on_means=false` drops that pull altogether, and the training noise.

THE RULE, written down on 2026-12-06 before any of these runs, and not changed after:

1. A candidate is a (setting, N) pair, N in {0, 10}. Its numbers are dev ACC / ECE / NLL,
   means over the seeds it ran; MLE's over the same seeds.
2. Eligible: dev ACC >= MLE's dev ACC - 1 point.
3. Per task, the chosen candidate is the eligible one with the lowest dev NLL; NLL within
   0.005 of it is a tie, broken by the lower ECE, then by the fewer passes (N=0 first).
4. Seeds: every setting runs seed 0; any candidate within 0.01 NLL of a task's chosen one
   (eligible or within 1.5 points of the accuracy bar) runs seeds 1 and 2 too, and the rule
   is applied again on the three-seed means.
5. The product default is the setting chosen on every task. If the tasks choose
   differently, it is the setting, eligible on every task, with the lowest sum of its NLL
   ranks among the eligible candidates; if none is eligible on every task, the default
   does not change and the README says so. The `paper` preset stays the authors'.
6. Temperature scaling (ts: MLE + T; blob-ts: the chosen setting + T, fitted on the held-out
   rows) is reported beside the choice and does not enter it: the README states whether
   the chosen BLoB beats TS on dev.

Settled on 2026-12-07, where the text above leaves a case open, before any seed-1 result: rule
4's re-application compares the finalists on their three-seed means; "within 0.01 NLL" is
either side of the chosen one; "within 1.5 points of the accuracy bar" is down to MLE - 2.5;
with nothing eligible on seed 0 no finalist runs; blob-ts runs the final choice on all
three seeds; a tie in rule 5's rank sums goes to the lower sum of NLLs; a margin met
exactly counts (1e-9 of float slack).

Budget cut, 2026-12-07, before any rte-qa BLoB run had finished: issue 29's 24 machine-hours
leave room on rte-qa for seed 0 of mle, ts and default only (`run --only mle ts default`).
The rule is not applied with runs missing, so the product default is not re-chosen, and the
report below names the runs the rule still waits for.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from experiments import kept, regime_scan
from experiments.dev_runs import machine_hours, measured_on, run_once, with_settings
from experiments.regime_scan import EPS

ROOT = regime_scan.ROOT
RUNS = ROOT / "runs" / "tradeoff"
RESULTS = ROOT / "experiments" / "results"
PLOT = ROOT / "bench" / "results" / "tradeoff.png"  # where the issue asked for it
CALIB = 0.2
ACC_GUARD = 1.0  # points below MLE a candidate may lose (rule 2)
NLL_TIE = 0.005  # rule 3
FINALIST_NLL = 0.01  # rule 4
FINALIST_ACC = 1.5  # rule 4: points below the accuracy bar (MLE - ACC_GUARD) a finalist may be
SEEDS = (0, 1, 2)
# setting: run-config overrides of a BLoB run on the product defaults
SETTINGS = {
    "default": {},
    "clock-0.05": {"kl_clock_scale": 0.05},
    "clock-1": {"kl_clock_scale": 1.0},
    "authors": {"kl_plan": "authors"},
    "beta-0.5": {"adapter.prior_std": 0.5},
    "beta-1": {"adapter.prior_std": 1.0},
    "beta-0.5-clock-1": {"adapter.prior_std": 0.5, "kl_clock_scale": 1.0},
    "sigma-only": {"kl_on_means": False},
    "sigma-only-clock-1": {"kl_on_means": False, "kl_clock_scale": 1.0},
    "train-sequence": {"adapter.sample_mode": "sequence"},
}
# Gemma runs cost about an hour each here: the axes' decisive points only
TASK_SETTINGS = {
    "mrpc": tuple(SETTINGS),
    "rte-qa": ("default", "clock-0.05", "authors", "beta-0.5", "sigma-only"),
}
BASELINES = ("mle", "ts")  # and blob-ts on each task's chosen setting
TS_ON = "blob-ts-"  # blob-ts-SETTING: the setting's run with a temperature
RUN_NAMES = (*BASELINES, *SETTINGS, *(f"{TS_ON}{s}" for s in SETTINGS))  # every run a task has


def budget(task: str) -> int:
    """The task's overconfident budget from the committed regime scan."""
    rows = json.loads(regime_scan.REGIME_JSON.read_text())
    found = [r["overconfident"] for r in rows if r["dataset"] == task and r.get("overconfident")]
    if not found:
        raise SystemExit(f"{task} has no overconfident budget in regime.json")
    return int(found[0]["step"])  # the first scan's, where a long scan also found one


def out_dir(task: str, name: str, seed: int) -> Path:
    return RUNS / task / f"{name}-s{seed}"


def command(task: str, name: str, seed: int) -> list[str]:
    """`blob train` of one setting (or baseline) on the task's dev carve."""
    lr = next(iter(regime_scan.SCANS[task]))
    extra: dict = {
        "eval_every": 0,
        "eval_samples": [0, 10],
        "calib_fraction": CALIB,
        "eval_limit": None,
        "seed": seed,
        "max_steps": budget(task),
        "output_dir": str(out_dir(task, name, seed)),
    }
    if name == "mle":
        extra |= {"method": "mle", "eval_samples": [0]}
    elif name == "ts":
        extra |= {"method": "ts", "eval_samples": [0], "max_steps": 0}
        extra["init_from"] = str(out_dir(task, "mle", seed))
    elif name.startswith(TS_ON):
        setting = name.removeprefix(TS_ON)
        extra |= {"method": "blob-ts", "max_steps": 0, **SETTINGS[setting]}
        extra["init_from"] = str(out_dir(task, setting, seed))
    else:
        extra |= {"method": "blob", **SETTINGS[name]}
    cmd = regime_scan.command(task, lr)
    return with_settings(cmd, extra, out_dir(task, name, seed))


def cmd_run(args: argparse.Namespace) -> int:
    """Seed 0 of every setting and baseline, then the finalists' other seeds (rule 4), then,
    once the rule's choice is final, BLoB + T of it on every seed (rule 6)."""
    failed = 0
    for task in args.tasks:
        for seed in args.seeds:
            rows = results(task)
            if seed and _missing_seed0(task, rows):
                print(f"tradeoff {task}: seed {seed} waits for every seed-0 run", flush=True)
                continue
            names = ["mle", "ts", *TASK_SETTINGS[task]] if seed == 0 else _finalists(rows)
            for name in [n for n in names if not args.only or n in args.only]:
                failed += not _run(task, name, seed)
        picked = decision(task, results(task))
        if picked["final"] and picked["chosen"]:
            setting = picked["chosen"]["setting"]
            for seed in SEEDS:  # the setting's run here first: blob-ts starts from its adapter
                failed += not (_run(task, setting, seed) and _run(task, TS_ON + setting, seed))
    return 1 if failed else 0


def _run(task: str, name: str, seed: int) -> bool:
    need = name in ("mle", *TASK_SETTINGS[task])  # another run starts from it
    label = f"tradeoff {task} {name} seed {seed}"
    return run_once(label, command(task, name, seed), out_dir(task, name, seed), need)


def results(task: str) -> dict[tuple[str, int], list[dict]]:
    """(name, N) -> the dev rows of every finished seed."""
    out: dict[tuple[str, int], list[dict]] = {}
    for name in RUN_NAMES:
        for seed in SEEDS:
            final = kept.where(out_dir(task, name, seed)) / "results-final.json"
            if not final.is_file():
                continue
            for row in json.loads(final.read_text()):
                out.setdefault((name, row["n_samples"]), []).append(row)
    return out


def choose(rows: dict[tuple[str, int], list[dict]]) -> dict:
    """The rule (module doc, 1-3) on seed means: every candidate with its numbers and
    eligibility, and the chosen one (None when none is eligible)."""
    mle_rows = rows.get(("mle", 0), [])
    candidates = []
    for (name, n), runs in rows.items():
        if name in BASELINES or name.startswith(TS_ON):
            continue
        seeds = sorted(r["seed"] for r in runs)
        base = [r for r in mle_rows if r["seed"] in seeds]
        if len(base) != len(seeds):
            continue  # compared only on the seeds MLE has
        mean = {k: statistics.fmean(r[k] for r in runs) for k in ("acc", "ece", "nll")}
        mle_acc = statistics.fmean(r["acc"] for r in base)
        candidates.append(
            {"setting": name, "n": n, "seeds": seeds, **mean, "mle_acc": mle_acc,
             "eligible": mean["acc"] >= mle_acc - ACC_GUARD - EPS}
        )  # fmt: skip
    eligible = [c for c in candidates if c["eligible"]]
    chosen = None
    if eligible:
        best = min(c["nll"] for c in eligible)
        tied = [c for c in eligible if c["nll"] <= best + NLL_TIE + EPS]
        chosen = min(tied, key=lambda c: (c["ece"], c["n"]))
    return {"candidates": candidates, "chosen": chosen}


def finalists(task: str, rows: dict | None = None) -> list[str]:
    """The runs of seeds 1 and 2 (rule 4), from the seed-0 results (`rows`: the task's
    results, when already read): MLE, TS and the settings near the seed-0 choice; none
    when nothing was eligible on seed 0 (no choice, so nothing is near it)."""
    return _finalists(results(task) if rows is None else rows)


def _finalists(rows: dict) -> list[str]:
    picked = choose(_on_seeds(rows, (0,)))
    if picked["chosen"] is None:
        return []
    chosen = picked["chosen"]["nll"]
    near = {
        c["setting"]
        for c in picked["candidates"]
        if abs(c["nll"] - chosen) <= FINALIST_NLL + EPS
        and c["acc"] >= c["mle_acc"] - ACC_GUARD - FINALIST_ACC - EPS
    }
    return ["mle", "ts", *sorted(near)]


def decision(task: str, rows: dict[tuple[str, int], list[dict]]) -> dict:
    """The rule's choice as it stands: seed 0's, final once every seed-0 run is in and
    nothing is near it; once every finalist ran every seed, the rule again on the finalists'
    three-seed means (rule 4), final. Adds `final` and `seeds` (the seeds it compared on)
    to `choose`'s answer."""
    seed0 = choose(_on_seeds(rows, (0,))) | {"seeds": [0]}
    if _missing_seed0(task, rows):
        return seed0 | {"final": False}
    names = _finalists(rows)
    have = _have(rows)
    if not all((n, s) in have for n in names for s in SEEDS):
        return seed0 | {"final": False}
    if not names:  # nothing eligible on seed 0
        return seed0 | {"final": True}
    full = {
        k: v for k, v in rows.items()
        if k[0] in names and sorted(r["seed"] for r in v) == list(SEEDS)
    }  # fmt: skip
    return choose(full) | {"final": True, "seeds": list(SEEDS)}


def _have(rows: dict) -> set[tuple[str, int]]:
    """(name, seed) of every finished run."""
    return {(name, r["seed"]) for (name, _), rs in rows.items() for r in rs}


def _missing_seed0(task: str, rows: dict) -> list[str]:
    have = _have(rows)
    return [n for n in ("mle", "ts", *TASK_SETTINGS[task]) if (n, 0) not in have]


def _on_seeds(rows: dict, seeds: tuple[int, ...]) -> dict:
    picked = {k: [r for r in v if r["seed"] in seeds] for k, v in rows.items()}
    return {k: v for k, v in picked.items() if v}


def pending(by_task: dict[str, dict] | None = None) -> list[str]:
    """What the rule still needs before it may choose (rules 4-6), a line per task
    (`by_task`: results already read)."""
    by_task = by_task or {task: results(task) for task in TASK_SETTINGS}
    return [
        f"{task} {need}" for task in TASK_SETTINGS if (need := task_pending(task, by_task[task]))
    ]


def task_pending(task: str, rows: dict) -> str | None:
    """What one task still needs: every setting's seed 0, then its finalists' seeds 1
    and 2, then BLoB + T of the choice on every seed; None once it has it all."""
    have = _have(rows)
    first = _missing_seed0(task, rows)
    if first:
        return f"seed 0 of {', '.join(first)}"
    later = [f"{n} seed {s}" for n in _finalists(rows) for s in SEEDS[1:] if (n, s) not in have]
    if not later:
        chosen = decision(task, rows)["chosen"]
        with_t = f"{TS_ON}{chosen['setting']}" if chosen else None
        later = [f"{with_t} seed {s}" for s in SEEDS if with_t and (with_t, s) not in have]
    return ", ".join(later) or None


def product_default(choices: dict[str, dict]) -> str | None:
    """Rule 5 across tasks: None when no setting is eligible on every task."""
    picked = {c["chosen"]["setting"] for c in choices.values() if c["chosen"]}
    if len(picked) == 1 and all(c["chosen"] for c in choices.values()):
        return picked.pop()
    ranks: dict[str, list[int]] = {}
    nlls: dict[str, float] = {}
    for choice in choices.values():
        eligible = sorted(
            (c for c in choice["candidates"] if c["eligible"]), key=lambda c: c["nll"]
        )
        best = {}
        for rank, c in enumerate(eligible, 1):
            if c["setting"] not in best:
                best[c["setting"]] = rank
                nlls[c["setting"]] = nlls.get(c["setting"], 0.0) + c["nll"]
        for setting, rank in best.items():
            ranks.setdefault(setting, []).append(rank)
    everywhere = {s: sum(r) for s, r in ranks.items() if len(r) == len(choices)}
    return min(everywhere, key=lambda s: (everywhere[s], nlls[s])) if everywhere else None


def cmd_report(args: argparse.Namespace) -> int:
    choices, md, points = {}, [], {}
    by_task = {task: results(task) for task in TASK_SETTINGS}
    missing = pending(by_task)
    for task, rows in by_task.items():
        if not rows:
            continue
        choices[task] = decision(task, rows)
        points[task] = rows
        done = choices[task]["final"] and task_pending(task, rows) is None
        md += _task_lines(task, choices[task], rows, final=done) + _cost_lines(task)
    default = product_default(choices) if choices and not missing else None
    if missing:
        verdict = "not chosen yet: the rule still needs " + "; ".join(missing)
    else:
        verdict = default or "unchanged (none eligible everywhere)"
    md += ["", f"**Product default by the rule:** {verdict}"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tradeoff.json").write_text(
        json.dumps({"choices": choices, "default": default, "pending": missing}, indent=1) + "\n"
    )
    head = (__doc__ or "").split("\n\n", 3)
    (RESULTS / "tradeoff.md").write_text(
        "# BLoB's calibration / accuracy trade-off on dev carves (overconfident regime)\n\n"
        + measured_on() + "\n\n" + "\n\n".join(head[2:]).strip() + "\n" + "\n".join(md)
        + "\n\n![ACC against ECE on dev](../../bench/results/tradeoff.png)\n"
    )  # fmt: skip
    _plot(points, PLOT)
    print("\n".join(md))
    return 0


def _task_lines(task: str, choice: dict, rows: dict, final: bool = True) -> list[str]:
    """The candidates on the seeds the rule compares (seed 0 until its finalists ran every
    seed; then every candidate on the seeds it ran, the seeds column says which), the
    choice marked, then the baselines."""
    lines = [
        "",
        f"## {task} (dev carve, {budget(task)} steps)",
        "",
        "| setting | N | seeds | ACC % | ECE % | NLL | eligible | median σ/\\|μ\\| | MI (nats) |",
        "|---|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    shown = rows if choice["seeds"] == list(SEEDS) else _on_seeds(rows, (0,))
    chosen, key = choice["chosen"], ("setting", "n", "seeds")
    for c in sorted(choose(shown)["candidates"], key=lambda c: c["nll"]):
        picked = chosen is not None and all(c[k] == chosen[k] for k in key)
        mark = (" **(chosen)**" if final else " (leads so far)") if picked else ""
        lines.append(
            f"| {c['setting']}{mark} | {c['n']} | {','.join(map(str, c['seeds']))} | "
            f"{c['acc']:.2f} | {c['ece']:.2f} | {c['nll']:.4f} | "
            f"{'yes' if c['eligible'] else 'no'} | {_posterior(shown[(c['setting'], c['n'])])} |"
        )
    for (name, n), runs in sorted(rows.items()):
        if name in BASELINES or name.startswith(TS_ON):
            mean = {k: statistics.fmean(r[k] for r in runs) for k in ("acc", "ece", "nll")}
            seeds = ",".join(str(r["seed"]) for r in runs)
            lines.append(
                f"| {name} (baseline) | {n} | {seeds} | {mean['acc']:.2f} | "
                f"{mean['ece']:.2f} | {mean['nll']:.4f} | – | {_posterior(runs)} |"
            )
    majority = {f"{r['majority_acc']:.2f}" for v in rows.values() for r in v if "majority_acc" in r}
    if len(majority) == 1:
        lines += ["", f"Majority class of the dev rows: {majority.pop()} %."]
    elif majority:  # every run is scored on the same dev rows: two values would be a defect
        lines += ["", f"**Runs scored on different dev rows:** majority classes "
                  f"{', '.join(sorted(majority))} %."]  # fmt: skip
    return lines


def _cost_lines(task: str) -> list[str]:
    """What the task's finished runs cost, where they were timed (issue 29 has a budget)."""
    outs = (out_dir(task, name, seed) for name in RUN_NAMES for seed in SEEDS)
    done = [out for out in outs if kept.finished(out)]
    hours = [h for h in map(machine_hours, done) if h is not None]
    if not hours:
        return []
    return ["", f"Machine time of the {len(hours)} of {len(done)} finished runs that were timed "
            f"(the others ran before dev runs kept it, commit efb4b38): {sum(hours):.2f} h of the whole "
            "machine (each run's wall time x its threads / cores)."]  # fmt: skip


def _posterior(runs: list[dict]) -> str:
    """Seed means of the median σ/|μ| (has the posterior formed?) and, at N>0, of the
    samples' mutual information (does it reach the predictions?): read before ECE."""
    ratio = [r["sigma_ratio_median"] for r in runs if r.get("sigma_ratio_median") is not None]
    mi = [r["mean_mi"] for r in runs if r.get("mean_mi") is not None]
    return (
        (f"{statistics.fmean(ratio):.2f}" if ratio else "–")
        + " | "
        + (f"{statistics.fmean(mi):.4f}" if mi else "–")
    )


def _plot(points: dict, path: Path) -> None:
    """ACC against ECE per task: each setting in a colour of its own, filled at N=10 and
    hollow at N=0; MLE and TS marked; the legend names them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from blob_lora.atomic import atomic_path

    if not points:
        return
    fig, axes = plt.subplots(1, len(points), figsize=(7.5 * len(points), 5), squeeze=False)
    for ax, (task, rows) in zip(axes[0], points.items(), strict=True):
        names = sorted({name for name, _ in rows} - set(BASELINES))
        palette = [plt.get_cmap("tab20")(i) for i in range(20) if i not in (6, 7, 14, 15)]
        colours = {name: palette[i % len(palette)] for i, name in enumerate(names)}  # no red, grey
        colours |= {"mle": "black", "ts": "tab:red"}
        for (name, n), runs in sorted(rows.items()):
            acc = statistics.fmean(r["acc"] for r in runs)
            ece = statistics.fmean(r["ece"] for r in runs)
            marker = {"mle": "s", "ts": "D"}.get(name, "*" if name.startswith(TS_ON) else "o")
            colour = colours[name]
            label = name + (f" N={n}" if name not in BASELINES else "")
            face = colour if n or name in BASELINES else "none"
            ax.scatter(ece, acc, marker=marker, edgecolors=colour, facecolors=face, s=55,
                       linewidths=1.5, label=label)  # fmt: skip
        if ("mle", 0) in rows:
            bar = statistics.fmean(r["acc"] for r in rows[("mle", 0)]) - ACC_GUARD
            ax.axhline(bar, color="grey", linestyle="--", linewidth=0.8, label="MLE ACC - 1")
        ax.set(title=f"{task} (dev; filled N=10, hollow N=0)", xlabel="dev ECE %",
               ylabel="dev ACC %")  # fmt: skip
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--tasks", nargs="+", default=list(TASK_SETTINGS), choices=list(TASK_SETTINGS))
    run.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    run.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="run only these of the rule's runs (mle, ts, a setting): a cut to fit a budget; "
        "the report still names every run the rule waits for",
    )
    sub.add_parser("report")
    args = parser.parse_args()
    return cmd_run(args) if args.command == "run" else cmd_report(args)


if __name__ == "__main__":
    raise SystemExit(main())
