"""Where our defaults differ from the authors' code: both, on the same runs, on a dev split.

    .venv/bin/python experiments/protocol_check.py run [--only NAME ...]   # resumable
    .venv/bin/python experiments/protocol_check.py report  # -> bench/results/protocol_check.*

Each pair shares everything but the one point (MRPC, dev split carved from train, the
task's scan budget and lr). Two of the runs are made by other experiments (`REUSE`): the
MLE scan (head=lora) and the schedule check's default-plan BLoB (sequence noise, the
authors' clock x 0.1). Post-hoc pairs (TFB, Laplace) start from the same MLE run, the
regime scan's. Prediction-only points share the trained weights: MC dropout's scope is
evaluated on the one MC-dropout run (init_from, no steps), and the ensemble's combine on
the same three members (member 0 is the regime scan's MLE run, as in the paper table; the
members are trained with our data order, so only the combine differs). The better of
each pair (dev NLL at the method's largest N, accuracy within 1 point) is the product
default; bench/README.md records the outcome.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kept  # noqa: E402
import regime_scan  # noqa: E402
from dev_runs import measured_on, run_once, with_settings  # noqa: E402

from blob_lora.protocol import PAPER_METHOD_OPTIONS  # noqa: E402

ROOT = regime_scan.ROOT
RUNS = ROOT / "runs" / "protocol-check"
RESULTS = ROOT / "bench" / "results"
TASK = "mrpc"
MLE = {
    "init_from": str(regime_scan.scan_dir(TASK, next(iter(regime_scan.SCANS[TASK])))),
    "max_steps": 0,
}
# name: (point, ours or theirs, settings)
VARIANTS = {
    # both pinned to what they ran with: the noise and clock defaults have changed since
    "noise-sequence": (
        "noise",
        "ours",
        {"method": "blob", "adapter.sample_mode": "sequence", "kl_clock_scale": 0.1},
    ),
    "noise-flipout": (
        "noise",
        "theirs",
        {"method": "blob", "adapter.sample_mode": "flipout", "kl_clock_scale": 0.1},
    ),
    "head-train": ("head", "ours", {"method": "mle", "head": "train"}),
    "head-lora": ("head", "theirs", {"method": "mle", "head": "lora"}),
    "tfb-log": ("tfb", "ours", {"method": "tfb", **MLE}),
    "tfb-authors": (
        "tfb",
        "theirs",
        {
            "method": "tfb",
            **MLE,
            "method_options": PAPER_METHOD_OPTIONS["tfb"],
        },
    ),
    "la-marglik": ("laplace prior", "ours", {"method": "la", **MLE}),
    "la-adam": (
        "laplace prior",
        "theirs",
        {"method": "la", **MLE, "method_options": PAPER_METHOD_OPTIONS["la"]},
    ),
    "mcd-adapter": ("mc dropout scope", "ours", {"method": "mcd"}),
    "mcd-all": ("mc dropout scope", "theirs", {"method": "mcd", "max_steps": 0}),
    "ens-probs": ("ensemble combine", "ours", {"method": "ens"}),
    "ens-logits": (
        "ensemble combine",
        "theirs",
        {"method": "ens", "method_options": {"combine": "logits"}},
    ),
}
# prediction-only variants: (the run whose weights they evaluate, what to copy from it)
SHARED_WEIGHTS = {"mcd-all": ("mcd-adapter", None), "ens-logits": ("ens-probs", "members")}


# runs that another experiment already makes with exactly these settings
REUSE = {
    "head-lora": regime_scan.scan_dir(TASK, next(iter(regime_scan.SCANS[TASK]))),
}


def out_dir(name: str) -> Path:
    return REUSE.get(name, RUNS / f"{TASK}-{name}")


def command(name: str) -> list[str]:
    lr = next(iter(regime_scan.SCANS[TASK]))
    settings = {
        "eval_every": 0,
        "eval_samples": [0, 10],
        "output_dir": str(out_dir(name)),
        **VARIANTS[name][2],
    }
    if name == "mcd-all":
        settings["init_from"] = str(out_dir("mcd-adapter"))
        settings["method_options"] = {"scope": "all"}
    return with_settings(regime_scan.command(TASK, lr), settings, out_dir(name))


def share_weights(name: str) -> bool:
    """Put the trained weights a prediction-only variant evaluates in place; False when
    the run that trains them has not finished."""
    if name == "ens-probs":  # member 0: the regime scan's MLE run (same seed, init, data)
        copy_adapter(out_dir("head-lora") / "adapter", out_dir(name) / "member-0" / "adapter")
        return True
    source, what = SHARED_WEIGHTS.get(name, (None, None))
    if source is None:
        return True
    if not kept.finished_here(out_dir(source)):
        print(f"skip {name}: {source} has not finished", flush=True)
        return False
    if what == "members":
        for member in sorted(out_dir(source).glob("member-*")):
            copy_adapter(member / "adapter", out_dir(name) / member.name / "adapter")
    return True


def copy_adapter(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(".adapter.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    tmp.rename(dst)


def adapter_sources(name: str) -> list[tuple[str, list[str], Path]]:
    """The runs whose adapters `name` starts from: the regime scan's MLE run (post-hoc
    pairs, ensemble member 0) or the run whose weights a prediction-only variant shares."""
    settings = VARIANTS[name][2]
    if settings.get("init_from") == MLE["init_from"] or name == "ens-probs":
        lr = next(iter(regime_scan.SCANS[TASK]))
        return [("scan", regime_scan.command(TASK, lr), out_dir("head-lora"))]
    source = SHARED_WEIGHTS.get(name, (None, None))[0]
    return [(source, command(source), out_dir(source))] if source else []


def cmd_run(args: argparse.Namespace) -> int:
    failed = 0
    for name in VARIANTS:
        if (args.only and name not in args.only) or name in REUSE:
            continue
        if kept.finished(out_dir(name)):
            continue
        for label, cmd, out in adapter_sources(name):  # kept without its adapter: again
            failed += not run_once(f"{label} (adapter for {name})", cmd, out, need_adapter=True)
        if not share_weights(name):
            failed += 1
            continue
        failed += not run_once(name, command(name), out_dir(name))
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    """The pairs' rows: from the runs (here or kept); a variant whose run is in neither
    (measured before runs were kept) keeps its rows from the committed results file."""
    committed = RESULTS / "protocol_check.json"
    earlier = json.loads(committed.read_text()) if committed.is_file() else []
    rows = []
    for name, (point, side, _) in VARIANTS.items():
        final = kept.where(out_dir(name)) / "results-final.json"
        if final.is_file():
            rows += [
                {"variant": name, "point": point, "side": side, **r}
                for r in json.loads(final.read_text())
            ]
        else:
            rows += [r for r in earlier if r["variant"] == name]
    lines = [
        "| point | variant | ours/theirs | N | ACC % | ECE % | NLL |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['point']} | {r['variant']} | {r['side']} | {r['n_samples']} | {r['acc']:.2f} | "
        f"{r['ece']:.2f} | {r['nll']:.4f} |"
        for r in rows
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "protocol_check.json").write_text(json.dumps(rows, indent=1) + "\n")
    (RESULTS / "protocol_check.md").write_text(
        "# Our defaults against the authors' code, on MRPC dev (MiniLM)\n\n"
        + measured_on()
        + " One seed (0); bench/README.md says which side became the default.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print("\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--only", nargs="*")
    sub.add_parser("report")
    args = parser.parse_args()
    return cmd_run(args) if args.command == "run" else cmd_report(args)


if __name__ == "__main__":
    raise SystemExit(main())
