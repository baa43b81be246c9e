"""Where our defaults differ from the authors' code: both, on the same runs, on a dev split.

    .venv/bin/python experiments/protocol_check.py run [--only NAME ...]   # resumable
    .venv/bin/python experiments/protocol_check.py report  # -> bench/results/protocol_check.*

Each pair shares everything but the one point (MRPC, dev split carved from train, the
task's scan budget and lr). Two of the runs are made by other experiments (`REUSE`): the
MLE scan (head=lora) and the schedule check's budget-plan BLoB (sequence noise). Post-hoc pairs (TFB, Laplace) start from the same MLE run, the
regime scan's. The better of each pair (dev NLL at N=10, accuracy within 1 point) is the
product default; bench/README.md records the outcome.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import regime_scan  # noqa: E402
from dev_runs import run_once, with_settings  # noqa: E402

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
    "noise-sequence": ("noise", "ours", {"method": "blob"}),
    "noise-flipout": ("noise", "theirs", {"method": "blob", "adapter.sample_mode": "flipout"}),
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
}


# runs that another experiment already makes with exactly these settings
REUSE = {
    "noise-sequence": ROOT / "runs" / "schedule-check" / f"{TASK}-budget",
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
    return with_settings(regime_scan.command(TASK, lr), settings, out_dir(name))


def cmd_run(args: argparse.Namespace) -> int:
    failed = 0
    for name in VARIANTS:
        if (args.only and name not in args.only) or name in REUSE:
            continue
        failed += not run_once(name, command(name), out_dir(name))
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    rows = []
    for name, (point, side, _) in VARIANTS.items():
        final = out_dir(name) / "results-final.json"
        if final.is_file():
            rows += [
                {"variant": name, "point": point, "side": side, **r}
                for r in json.loads(final.read_text())
            ]
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
