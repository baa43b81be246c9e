"""The paper's table at small scale: every method x 3 seeds, ID and OOD, one command.

    .venv/bin/python -m bench.paper_table run      # train/evaluate what is not done yet
    .venv/bin/python -m bench.paper_table status   # what is done, what is left
    .venv/bin/python -m bench.paper_table report   # -> results/paper_table.{json,md}

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

The work is split by job: table_plan (tiers, methods, each run and its command), table_run,
table_status, table_collect (reading finished runs) and table_report. This file is the
command line, and it re-exports the names the tests use.
"""

from __future__ import annotations

import argparse
import sys

from bench import table_plan
from bench.table_plan import (
    DEFAULT_TIERS,
    SEEDS,
    Run,
    command,
    eval_samples,
    methods,
    plan,
)
from bench.table_report import _cost_lines, _rank, cmd_report
from bench.table_run import cmd_run, timed_run
from bench.table_status import _starts, cmd_status, projected_s

__all__ = [
    "Run",
    "_cost_lines",
    "_rank",
    "_starts",
    "command",
    "eval_samples",
    "main",
    "methods",
    "plan",
    "projected_s",
    "timed_run",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["run", "status", "report"])
    # TIERS is read through its module, so a patched table_plan.TIERS is what --tiers accepts
    parser.add_argument("--tiers", nargs="+", default=DEFAULT_TIERS, choices=list(table_plan.TIERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--methods", nargs="+", default=list(methods()), choices=list(methods()))
    parser.add_argument(
        "--tasks", nargs="+", help="only these task keys of the tiers, in this order per seed"
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (run)")
    parser.add_argument("--threads", type=int, help="torch threads per run (default cores/jobs)")
    parser.add_argument(
        "--allow-slow-precision",
        action="store_true",
        help="run a bf16 tier on a CPU without native bf16 all the same (run)",
    )
    args = parser.parse_args(argv)
    return {"run": cmd_run, "status": cmd_status, "report": cmd_report}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
