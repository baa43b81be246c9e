"""`paper_table.py report`: the collected rows as results/paper_table.{json,md}, one ACC
against ECE figure per tier, the paper's claims checked against the seed means, and the
measured cost per method."""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections import Counter

from bench.table_collect import SCORES, _ds_label, collect
from bench.table_plan import (
    ROOT,
    SEEDS,
    eval_samples,
    load_tier,
    methods,
    other_sets,
    post_hoc_source,
)
from bench.table_records import provenance
from bench.table_settings import settings_lines
from bench.table_subsets import subset_lines
from blob_lora.methods import sample_label
from blob_lora.report.table import md_cell, mean_std_cell

RESULTS = ROOT / "bench" / "results"
EPS = 1e-9  # float slack: a tie stays a tie, and 1 point exactly is within 1 point


def _label(method: str, n: int) -> str:
    return sample_label(method, n)


def _blob_family() -> set[str]:
    """BLoB and the methods fitted on its runs (blob-ts): ranked against the baselines only."""
    return {"blob"} | {m for m in methods() if post_hoc_source(m) == "blob"}


def _method_of(label: str) -> str:
    return label.split(" (N=")[0]


def labels() -> list[str]:
    """The table's row order: every method at each of its N, in the registry's order."""
    return [_label(m, n) for m in methods() for n in eval_samples(m)]


def _by_label(rows: list[dict], column_key: str, col: str) -> dict[str, list[dict]]:
    """One column of a grid: its rows per method label, in the table's order."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        if r[column_key] == col:
            out.setdefault(_label(r["method"], r["n_samples"]), []).append(r)
    return {label: out[label] for label in labels() if label in out}


def _one_row_per_run(rows: list[dict]) -> list[dict]:
    """A run's rows at its largest N only: its posterior (sigma) is the same at every N."""
    best: dict[tuple, dict] = {}
    for r in rows:
        key = (r["method"], r["trained_on"], r["dataset"], r["seed"])
        if key not in best or r["n_samples"] > best[key]["n_samples"]:
            best[key] = r
    return list(best.values())


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
        for label in labels():
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
                    f"| {md_cell(METRIC_LABELS.get(metric, metric))} | {md_cell(label)} | "
                    + " | ".join(cells)
                    + " |"
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


def _machines(rows: list[dict], here: str) -> str:
    """Which machines the runs were measured on, with how many runs each (their costs are
    compared in one table, so the reader must know when they mix machines)."""
    runs = {(r["tier"], r["trained_on"], r["method"], r["seed"]): r.get("machine", here)
            for r in rows}  # fmt: skip
    counts = Counter(runs.values())
    return "; ".join(f"{m} ({n} runs)" for m, n in counts.most_common()) or here


def cmd_report(args: argparse.Namespace) -> int:
    rows, detection = collect(args.tiers)
    meta = provenance()
    commit = meta["commit"]
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
    # newer runs carry them; a set with another task's labels has predictions only
    optional = ("majority_acc", "sigma_mean", "sigma_ratio_median", "labels", "mean_max_prob",
                "mean_entropy")  # fmt: skip
    table_rows = [
        {k: r[k] for k in keep if k in r}
        | {k: r[k] for k in optional if k in r}
        | {"tier": r["tier"], "trained_on": r["trained_on"]}
        | {k: r.get(k, meta[k]) for k in meta}  # where and when the run was recorded
        for r in rows
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "paper_table.json").write_text(json.dumps(table_rows, indent=1) + "\n")
    (RESULTS / "paper_table_ood_detection.json").write_text(
        json.dumps([meta | d for d in detection], indent=1) + "\n"
    )
    md = [
        "# The paper's table at small scale",
        "",
        f"Command: `.venv/bin/python -m bench.paper_table run` then `report`. Report at commit "
        f"{commit}, {meta['date']}; runs measured on {_machines(rows, meta['machine'])}. "
        "Cells: mean ± std over seeds (a count in parentheses where fewer than 3 seeds are "
        "finished or planned).",
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
            *_method_seed_note(spec),
            *settings_lines(tier),
            *subset_lines(tier, RESULTS),
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
            md += _grid(_one_row_per_run(ind), columns, "trained_on",
                        ["sigma_mean", "sigma_ratio_median"])  # fmt: skip
        for task_key, task in spec["tasks"].items():
            ood_sets = [_ds_label(d) for d in other_sets(task)]
            sub = [
                r
                for r in mine
                if r["trained_on"] == task_key
                and r["dataset"] in ood_sets
                and r.get("acc") is not None  # an OOD set with other classes: detection only
            ]
            if sub:
                md += [
                    "",
                    f"### Out of distribution: trained on {task_key}, evaluated unchanged",
                    "",
                ]
                present = [d for d in ood_sets if any(r["dataset"] == d for r in sub)]
                md += _grid(sub, present, "dataset", ["acc", "ece", "nll"])
        md += _claims(ind, mine, spec)
        figure = _plot_tier(ind, columns, spec["model_label"])
        png = RESULTS / f"paper_table_{tier}.png"
        figure.savefig(png, dpi=110)
        md += ["", f"![ACC against ECE per method]({png.name})"]
        labelled = [r for r in ind if r.get("acc") is not None]
        binned = [r for r in labelled if r.get("reliability")]
        png = RESULTS / f"paper_table_{tier}_reliability.png"
        png.unlink(missing_ok=True)  # none left from an earlier report when no row has bins
        if binned:
            _plot_reliability(ind, columns).savefig(png, dpi=110)
            md += [
                "",
                "Reliability: accuracy against confidence in 15 equal bins, the predictions of "
                f"a method's runs pooled ({len(binned)} of the {len(labelled)} result rows "
                "have their bins, which a record takes from its run's saved predictions); on "
                "the diagonal is calibrated, below it overconfident; bins "
                f"under {MIN_BIN_SHARE:.0%} of the predictions are left out.",
                "",
                f"![Reliability per method]({png.name})",
            ]
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
        md += _inference_lines(tier, list(spec["tasks"]))
        md += [
            "",
            f"Machine time of the finished runs of this tier: {wall:.2f} h of the whole "
            f"{os.cpu_count()}-core machine (each run's wall time x its threads / cores).",
        ]
    (RESULTS / "paper_table.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


CLAIM_METRICS = ("acc", "ece", "nll")  # what the claims rank methods on


def _means(
    rows: list[dict], column_key: str, col: str
) -> tuple[dict[str, dict[str, float]], list[int]]:
    """Per method label, the mean of each metric in one column of a grid over the seeds
    every label has (a method run on fewer seeds, `method_seeds`, is then compared on the
    same seeds as the rest), and those seeds."""
    mine = _by_label(rows, column_key, col)
    seed_sets = [{r["seed"] for r in rs} for rs in mine.values()]
    shared = sorted(set.intersection(*seed_sets)) if seed_sets else []
    if not shared:  # no seed every label has (a partial report): nothing to compare
        return {}, []
    means = {
        label: {m: statistics.fmean(r[m] for r in rs if r["seed"] in shared) for m in CLAIM_METRICS}
        for label, rs in mine.items()
    }
    return means, shared


def _rank(
    means: dict[str, dict[str, float]], label: str, metric: str, low: bool
) -> tuple[int, int]:
    """(place, out of): `label` among the baseline methods (1 = best; ties share). A
    method scored at two N is one rival, counted as ahead when either of its N is."""
    family = _blob_family()
    rivals: dict[str, list[float]] = {}
    for k, m in means.items():
        if _method_of(k) not in family | {_method_of(label)}:
            rivals.setdefault(_method_of(k), []).append(m[metric])
    sign = 1 if low else -1
    mine = means[label][metric]
    better = sum(any(sign * (v - mine) < -EPS for v in vs) for vs in rivals.values())
    return better + 1, len(rivals) + 1


def _claims(ind: list[dict], mine: list[dict], spec: dict) -> list[str]:
    """The paper's three claims, each compared with this tier's seed means. BLoB is
    ranked against the baseline methods only: never against its other N, nor against
    blob-ts, which is BLoB itself with a temperature and has a column of its own."""
    n10, n0, bts = "blob (N=10)", "blob (N=0)", "blob-ts (N=10)"
    grids = [(c, c, *_means(ind, "trained_on", c)) for c in spec["tasks"]]
    for task_key, task in spec["tasks"].items():
        trained = [r for r in mine if r["trained_on"] == task_key]
        labelled = [r for r in trained if r.get("acc") is not None]
        for ood in map(_ds_label, other_sets(task)):
            grids.append((task_key, ood, *_means(labelled, "dataset", ood)))
    rows = []
    for trained_on, evaluated, means, seeds in grids:
        if not {n10, n0, "mle"} <= set(means) or not seeds:
            continue
        ece, nll = _rank(means, n10, "ece", True), _rank(means, n10, "nll", True)
        gap = means[n10]["acc"] - means["mle"]["acc"]
        acc0 = _rank(means, n0, "acc", False)
        # an accuracy above MLE's is no failure: the claim asks for at most 1 point less
        near = ece[0] <= 2 and nll[0] <= 2 and gap >= -1.0 - EPS
        ood = "" if trained_on == evaluated else _verdict(ece[0] == 1)
        rows.append(
            f"| {trained_on} | {evaluated} | {_place(ece)} | {_place(nll)} | {gap:+.2f} | "
            f"{_verdict(near)} | {_place(acc0)} | {_verdict(acc0[0] == 1)} | {ood} | "
            f"{_against_ts(means, n10)} | {_combined(means, bts)} | "
            f"{', '.join(map(str, seeds))} |"
        )
    if not rows:
        return []
    return [
        "",
        "### The paper's claims against these numbers (seed means; rank 1 = best)",
        "",
        "Claims: (1) BLoB N=10 has the lowest or near-lowest (rank 1-2) ECE and NLL at an "
        "accuracy within 1 point of MLE; (2) BLoB N=0 keeps the best accuracy; (3) out of "
        "distribution BLoB N=10 is better calibrated than the baselines (ECE rank 1). Each "
        "row compares the methods on the seeds all of them have (last column): where a "
        "method runs on fewer seeds, its rivals' means there differ from the grid's. The "
        "baselines BLoB is ranked against include temperature scaling (ts). 'vs TS': BLoB "
        "N=10's ECE and NLL minus TS's (negative: BLoB better). 'BLoB+TS': blob-ts N=10's "
        "ECE and NLL ranks among the same baselines. Ranks count methods: a baseline scored "
        "at N=0 and N=10 is one rival, ahead when either of its N is.",
        "",
        "| trained on | evaluated on | BLoB N=10: ECE rank | NLL rank | ACC − MLE | (1) "
        "| BLoB N=0: ACC rank | (2) | (3) | vs TS: ΔECE, ΔNLL | BLoB+TS: ECE, NLL rank "
        "| seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]


def _against_ts(means: dict[str, dict[str, float]], label: str) -> str:
    if "ts" not in means:
        return "–"
    d_ece = means[label]["ece"] - means["ts"]["ece"]
    d_nll = means[label]["nll"] - means["ts"]["nll"]
    return f"{d_ece:+.2f}, {d_nll:+.3f}"


def _combined(means: dict[str, dict[str, float]], label: str) -> str:
    if label not in means:
        return "–"
    ece, nll = _rank(means, label, "ece", True), _rank(means, label, "nll", True)
    return f"{_place(ece)}, {_place(nll)}"


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
    colors = {label: f"C{i}" for i, label in enumerate(labels())}
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


def pooled_reliability(rows: list[dict]) -> tuple[list[float], list[float], list[int]]:
    """(confidence, accuracy, count) of the non-empty bins of several runs' reliability
    bins, pooled as if their predictions were one set (count-weighted means)."""
    first = rows[0]["reliability"]["count"]
    count, conf, acc = [0] * len(first), [0.0] * len(first), [0.0] * len(first)
    for r in rows:
        bins = r["reliability"]
        for i, n in enumerate(bins["count"]):
            if n:
                count[i] += n
                conf[i] += n * bins["confidence"][i]
                acc[i] += n * bins["accuracy"][i]
    full = [i for i, n in enumerate(count) if n]
    return (
        [conf[i] / count[i] for i in full],
        [acc[i] / count[i] for i in full],
        [count[i] for i in full],
    )


MIN_BIN_SHARE = 0.02  # a bin under 2% of the predictions is noise in the plot


def _plot_reliability(ind: list[dict], columns: list[str]):
    """One panel per task: each method's reliability curve over the runs whose predictions
    were at hand, pooled; MLE and BLoB drawn bold, the other methods thin."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.2 + 3.4 * len(columns), 3.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    colors = {label: f"C{i}" for i, label in enumerate(labels())}
    for ax, col in zip(axes, columns, strict=True):
        ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1)
        for label, mine in _by_label(ind, "trained_on", col).items():
            mine = [r for r in mine if r.get("reliability")]
            if not mine:
                continue
            conf, acc, count = pooled_reliability(mine)
            keep = [i for i, n in enumerate(count) if n >= MIN_BIN_SHARE * sum(count)]
            bold = label == "mle" or label.startswith("blob")
            ax.plot(
                [conf[i] for i in keep], [acc[i] for i in keep], marker="o", label=label,
                color=colors[label], lw=2.2 if bold else 0.9, alpha=1.0 if bold else 0.55,
                markersize=4 if bold else 2,
            )  # fmt: skip
        ax.set_title(col)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", fontsize="small")
    return fig


def _verdict(agrees: bool) -> str:
    return "agrees" if agrees else "disagrees"


def _method_seed_note(spec: dict) -> list[str]:
    """Which methods the tier runs on fewer seeds (`method_seeds`): their cells show the
    count, as an unfinished seed would."""
    fewer = spec.get("method_seeds") or {}
    if not fewer:
        return []
    parts = [f"{m} on seeds {', '.join(map(str, seeds))}" for m, seeds in fewer.items()]
    return ["", "Planned on fewer seeds, to fit the budget: " + "; ".join(parts) + "."]


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


def _cost_lines(mine: list[dict], tasks: list[str]) -> list[str]:
    """Measured cost per method: machine minutes per run (training, any post-hoc fit, and
    every evaluation at the method's N) and the ratio to MLE on the same task and the same
    machine (a task whose runs ran on two machines gets a column for each: a mean over
    machines would compare one machine's seed with another's). Runs that were interrupted
    and resumed are left out: their time is not one run's (work redone on resuming; before
    the table kept a running total, an earlier start went untimed)."""
    per_run: dict[tuple[str, str, str, int], float] = {}
    for r in mine:
        if r["machine_s"] and r["starts"] == 1:
            machine = _short_machine(r.get("machine", ""))
            per_run[(r["trained_on"], machine, r["method"], r["seed"])] = r["machine_s"] / 60
    by_column: dict[tuple[str, str], dict[str, list[float]]] = {}
    for (task, machine, method, _), minutes in per_run.items():
        by_column.setdefault((task, machine), {}).setdefault(method, []).append(minutes)
    columns = [key for t in tasks for key in sorted(by_column) if key[0] == t]
    if not columns:
        return []
    machines_of = {t: [m for task, m in columns if task == t] for t, _ in columns}
    heads = [t if len(machines_of[t]) == 1 else f"{t} ({m or 'unknown'})" for t, m in columns]
    lines = [
        "",
        "### Measured cost: machine minutes per run (ratio to MLE)",
        "",
        "Mean over the seeds of runs that ran uninterrupted, two 1-thread runs sharing the "
        "2 cores; the ratio is to MLE on the same task and machine. Post-hoc methods start "
        "from another run (la, tfb and ts from MLE's, blob-ts from BLoB's), whose training "
        "is not counted; ens trains 2 members and takes member 0 from the MLE run. map is not "
        "trained where its weight decay rounds away in fp32 (lr x 1e-5 at or under 2^-25): "
        "its rows are the MLE run's, relabelled (bench/table_records.py), so it has no cost "
        "there.",
        "",
        "| method | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for method in methods():
        cells = []
        for col in columns:
            runs = by_column[col]
            if method not in runs:
                cells.append("–")
                continue
            minutes = statistics.fmean(runs[method])
            base = statistics.fmean(runs["mle"]) if "mle" in runs else None
            ratio = f" ({minutes / base:.2f}x)" if base else ""
            cells.append(f"{minutes:.1f}{ratio}")
        if any(c != "–" for c in cells):
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _inference_lines(tier: str, tasks: list[str]) -> list[str]:
    """Prediction time per example and peak memory of every method at each N it is scored
    at (and BLoB's one-pass modes), as ratios to MLE N=0: bench/inference_cost.py's
    measurements, made on the tier's own runs in one invocation."""
    path = RESULTS / "inference_cost.json"
    if not path.is_file():
        return []
    measured = json.loads(path.read_text())
    per_task = measured["tiers"].get(tier, {})
    columns = [t for t in tasks if per_task.get(t)]
    if not columns:
        return []
    names = [name for t in columns for name in per_task[t]]
    lines = [
        "",
        "### Prediction cost: time per example and peak memory (ratio to MLE N=0)",
        "",
        f"{measured['machine']}: {measured['rows']} rows of each method's run, each "
        "(method, N) in a fresh process (bench/results/inference_cost.md). Cells: time x / "
        "memory x; memory is the process's peak (model included) while it predicts. "
        "Marked *: measured on a short stand-in run of the tier's own command for a method "
        "the table has not run yet (cost does not depend on the training length).",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name in dict.fromkeys(names):
        cells = []
        for task in columns:
            cell = per_task[task].get(name)
            if cell is None or cell.get("time_x") is None:
                cells.append("–")
            else:
                star = "*" if cell.get("stand_in_steps") else ""
                cells.append(f"{cell['time_x']:.2f}x / {cell['memory_x']:.2f}x{star}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _short_machine(machine: str) -> str:
    """'Intel(R) Xeon(R) Processor, 2 cores' -> 'Intel Xeon'; 'AMD EPYC 9R14 ...' -> 'AMD EPYC'."""
    cpu = machine.split(",")[0].replace("(R)", "").replace("(TM)", "").split()
    return " ".join(cpu[:2])
