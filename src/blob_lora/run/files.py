"""The files of a run folder: their names, atomic writes, logs, the lock, and labels."""

from __future__ import annotations

import csv
import errno
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_path, write_text_atomic
from ..errors import ConfigError
from ..kl_plan import KLPlan
from .config import RunConfig

RUN_CONFIG = "run_config.json"
KL_PLAN = "kl_plan.json"
SIGMA_LOG = "sigma_log.jsonl"  # per-layer sigma statistics, ~50 rows a run
LOCK_FILE = ".blob-lora.lock"
FINAL_TAG = "final"  # the training run's own results, predictions and plots


def training_tag(tag: str) -> bool:
    """Whether files under `tag` are the training run's: `final` (results-final.json,
    predictions/final-*, plots/final-*; `final-X` too, whose files `final-X-SET-N*` could be
    the training run's `final-LABEL-N*`) and its step evaluations (`stepK`). Compared
    case-blind: on a case-insensitive disk results-FINAL.json is results-final.json."""
    low = tag.lower()
    return (
        low == FINAL_TAG
        or low.startswith(f"{FINAL_TAG}-")
        or re.fullmatch(r"step\d+", low) is not None
    )


@dataclass(frozen=True)
class RunDir:
    """Where each file of a run folder lives: the one place that spells their names.

    An ensemble's members are runs of their own inside it (`part("member-0")`), with
    their own checkpoints, logs and adapter.
    """

    root: Path

    def part(self, name: str) -> RunDir:
        return RunDir(self.root / name) if name else self

    def results(self, tag: str) -> Path:
        return self.root / f"results-{tag}.json"

    @property
    def config(self) -> Path:
        return self.root / RUN_CONFIG

    @property
    def kl_plan(self) -> Path:
        return self.root / KL_PLAN

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics_log(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def metrics_csv(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def eval_log(self) -> Path:
        return self.root / "eval_log.jsonl"

    @property
    def sigma_log(self) -> Path:
        return self.root / SIGMA_LOG

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    def generations(self, tag: str, dataset: str, n: int) -> Path:
        """A generation run's outputs for one evaluation: one JSON line per input."""
        return self.predictions / f"{tag}-{dataset}-N{n}.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    def members(self) -> list[RunDir]:
        return [RunDir(p) for p in sorted(self.root.glob("member-*")) if p.is_dir()]

    def holds_progress(self) -> bool:
        """Whether a rerun would lose anything: a checkpoint, an adapter or results, of
        the run or of any ensemble member."""
        for files in (self, *self.members()):
            if files.adapter.exists() or any(files.root.glob("results-*.json")):
                return True
            if files.checkpoints.is_dir() and any(files.checkpoints.glob("step-*")):
                return True
        return False

    def clear_attempt(self) -> None:
        """Remove what a start that saved nothing wrote (only files a run writes), so a
        corrected config can start afresh: a typo found late, a NaN before the first
        checkpoint, a kill before it."""
        import shutil

        for files in (self, *self.members()):
            for path in (files.config, files.kl_plan, files.metrics_log, files.metrics_csv,
                         files.eval_log, files.sigma_log):  # fmt: skip
                path.unlink(missing_ok=True)
            for folder in (files.checkpoints, files.plots, files.predictions, files.tensorboard):
                shutil.rmtree(folder, ignore_errors=True)


def plan_dict(plan: KLPlan) -> dict[str, Any]:
    return {
        "plan": plan.kind,
        "cycle": plan.schedule.cycle_length,
        "cycles": plan.schedule.cycles,
        "kl_lr": plan.kl_lr,
        "clock": plan.clock,
        "target_clock": plan.target_clock,
        "reference": plan.reference,
        "reference_cycles": plan.reference_cycles,
        "sigma0": plan.sigma0,
        "optim_scheme": plan.optim_scheme,
        "kl_lr_used": plan.predicts_sigma,
        "predicted_sigma": plan.predicted_sigma if plan.predicts_sigma else None,
        "kl_only_mean_shrink": plan.mean_shrink if plan.predicts_sigma else None,
        "text": plan.describe(),
    }


WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR}


def is_write_failure(err: BaseException) -> bool:
    """A full disk or a folder we may not write: safetensors reports them as its own error
    type with the OS error number in the text."""
    if isinstance(err, OSError):
        return err.errno in WRITE_ERRNOS
    text = str(err)
    return type(err).__name__ == "SafetensorError" and any(
        f"os error {n})" in text for n in WRITE_ERRNOS
    )


def write_failure_reason(err: BaseException) -> str:
    if isinstance(err, OSError):
        return os.strerror(err.errno) if err.errno else str(err)
    return str(err).split(": ", 1)[-1]


def lock_run_dir(out: Path) -> Any:
    """An exclusive lock on the run folder for this process's lifetime (released by the OS
    when it exits, however it exits): two `blob train` on one folder would interleave
    checkpoints and logs."""
    import fcntl

    handle = open(RunDir(out).lock, "a+")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(
            f"another process is training in {out} (it holds {RunDir(out).lock}); wait for it "
            "to finish or choose another output_dir"
        ) from None
    return handle


def as_saved(cfg: RunConfig) -> dict[str, Any]:
    """A config as run_config.json holds it (tuples as lists), for comparing on resume."""
    return json.loads(json.dumps(cfg.to_dict()))


def dataset_label(name: str) -> str:
    """A file-name-safe label: the short name, or the `name`/path stem of a JSON spec."""
    if name.lstrip().startswith("{"):
        try:
            spec = json.loads(name)
            name = str(spec.get("name") or Path(str(spec.get("path", "custom"))).stem)
        except json.JSONDecodeError:
            name = "custom"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2))


def tensorboard_writer(run_dir: Path) -> Any:
    """A TensorBoard writer under run_dir/tensorboard when tensorboard is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(RunDir(run_dir).tensorboard))


def truncate_log(path: Path, step: int) -> None:
    """Drop log rows past the restored step (they belong to the interrupted attempt)."""
    if not path.exists():
        return
    keep = [
        ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step
    ]
    write_text_atomic(path, "".join(ln + "\n" for ln in keep))


def jsonl_to_csv(src: Path, dst: Path) -> None:
    if not src.exists():
        return
    rows = [json.loads(line) for line in src.read_text().splitlines() if line.strip()]
    if not rows:
        return
    with atomic_path(dst) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
