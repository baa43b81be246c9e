"""What a finished dev-split run leaves in the repository, so that a later session (a new
machine, without the git-ignored runs/) neither trains it again nor loses its report.

A run under runs/ is kept, once finished, as the small files the reports read: its final
results, config, KL plan, the eval and sigma logs, the training log thinned to at most
MAX_LINES lines (first, evenly spaced, last), and generation outputs (predictions/*.jsonl).
Adapters are not kept: a run that another one starts from (`init_from`) is trained again
when only its kept copy is here (`run_once(..., need_adapter=True)`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.machine_time import MACHINE_TIME  # written by dev_runs.run_once: a study's cost

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs"
KEPT = ROOT / "experiments" / "results" / "kept"
FINAL = "results-final.json"
FILES = ("results-final.json", "run_config.json", "kl_plan.json", "eval_log.jsonl",
         "sigma_log.jsonl", MACHINE_TIME)  # fmt: skip
THINNED = ("metrics.jsonl",)
MAX_LINES = 250


def kept_dir(out: Path) -> Path | None:
    """Where `out` is kept; None for a run outside runs/ (a dry run under /tmp)."""
    try:
        return KEPT / out.resolve().relative_to(RUNS.resolve())
    except ValueError:
        return None


def keep(out: Path) -> None:
    """Copy the report files of the finished run `out` (written whole, then renamed)."""
    dst = kept_dir(out)
    if dst is None:
        return
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in FILES:
        if (out / name).is_file():
            shutil.copy2(out / name, tmp / name)
    for name in THINNED:
        if (out / name).is_file():
            (tmp / name).write_text("".join(thin((out / name).read_text().splitlines(True))))
    for path in sorted((out / "predictions").glob("*.jsonl")):
        (tmp / "predictions").mkdir(exist_ok=True)
        shutil.copy2(path, tmp / "predictions" / path.name)
    for member in sorted(out.glob("member-*")):  # an ensemble's per-member results
        if (member / FINAL).is_file():
            (tmp / member.name).mkdir()
            shutil.copy2(member / FINAL, tmp / member.name / FINAL)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def thin(lines: list[str], most: int = MAX_LINES) -> list[str]:
    if len(lines) <= most:
        return lines
    picks = {round(i * (len(lines) - 1) / (most - 1)) for i in range(most)}
    return [lines[i] for i in sorted(picks)]


def finished_here(out: Path) -> bool:
    return (out / FINAL).is_file()


def finished(out: Path) -> bool:
    """Finished in this checkout's runs/, or kept from an earlier session."""
    dst = kept_dir(out)
    return finished_here(out) or (dst is not None and (dst / FINAL).is_file())


def where(out: Path) -> Path:
    """The folder to read a run's report files from: the run itself when it finished here
    (kept on the way, if it was not yet), else its kept copy."""
    dst = kept_dir(out)
    if finished_here(out) or dst is None:
        if dst is not None and not (dst / FINAL).is_file():
            keep(out)
        return out
    return dst
