"""What the paper's table is: its tiers, methods and seeds, each run's folder, and the
`blob train` command that makes it. `run`, `status` and `report` all start from here.

The paths are read at call time (`load_tier`, `Run.out`), so a test can point them
elsewhere by patching this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from blob_lora.methods import METHODS as REGISTRY
from blob_lora.run.files import RunDir

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "paper-table"
# one committed JSON record per finished run (bench/table_records.py): what survives a session
RECORDS = ROOT / "bench" / "results" / "paper_table_runs"
TIERS = {
    "minilm": ROOT / "configs" / "table-minilm.yaml",
    "gemma": ROOT / "configs" / "table-gemma.yaml",
    # the re-run where the models learn and the posterior forms (issue 13)
    "minilm-regime": ROOT / "configs" / "table-regime-minilm.yaml",
    "gemma-regime": ROOT / "configs" / "table-regime-gemma.yaml",
    # RTE-qa at its best-dev-accuracy step, where MLE has grown overconfident (issue 13)
    "gemma-overconfident": ROOT / "configs" / "table-overconfident-gemma.yaml",
    # issue 29: the overconfident regime with a held-out calibration carve (ts, blob-ts)
    "oc-gemma": ROOT / "configs" / "table-oc-gemma.yaml",
    "oc-minilm": ROOT / "configs" / "table-oc-minilm.yaml",
}
# what `run`, `status` and `report` do without --tiers: the current table (the first one,
# 150 steps where the models barely learned, stays reproducible with --tiers minilm gemma)
DEFAULT_TIERS = ["minilm-regime"]
SEEDS = (0, 1, 2)


# What the table knows of a method it reads from the registry, when asked (never a list
# of its own, and never copied at import: a method registered later takes part too).
def methods() -> tuple[str, ...]:
    """The registered methods, in the registry's order (mle first: others start from it)."""
    return tuple(REGISTRY)


def eval_samples(method: str) -> list[int]:
    """The N the table evaluates `method` at."""
    return list(REGISTRY[method].table_n)


def post_hoc_source(method: str) -> str | None:
    """The method whose finished run a post-hoc method is fitted on; None: it trains."""
    return REGISTRY[method].post_hoc_of


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
    def record(self) -> Path:
        return RECORDS / self.tier / self.task / f"{self.method}-s{self.seed}.json"

    @property
    def steps(self) -> int | None:
        """The task's budget in the tier's config now (post-hoc runs report their MLE's)."""
        return task_settings(load_tier(self.tier), self.task).get("max_steps")

    def at_budget(self, rows: list[dict]) -> bool:
        """Whether result rows were trained at the current budget: a record or run made
        before the tier's max_steps changed is stale, and is neither reported nor skipped."""
        return self.steps is None or all(r.get("steps") == self.steps for r in rows)

    @property
    def trained(self) -> bool:
        """Finished in this checkout's runs/ at the current budget (post-hoc methods and
        ens need this of MLE)."""
        final = RunDir(self.out).results("final")
        return final.is_file() and self.at_budget(json.loads(final.read_text()))

    @property
    def recorded(self) -> bool:
        """Committed as a record at the current budget."""
        if not self.record.is_file():
            return False
        return self.at_budget(json.loads(self.record.read_text())["rows"])

    @property
    def stale(self) -> bool:
        """A record from an earlier budget: the run must be trained again."""
        return self.record.is_file() and not self.recorded

    @property
    def done(self) -> bool:
        """Finished here, or in an earlier session that committed its record."""
        return self.recorded or self.trained


def load_tier(tier: str) -> dict:
    return yaml.safe_load(TIERS[tier].read_text())


def task_settings(spec: dict, task: str) -> dict:
    """A task's settings in a tier: the tier's, overridden by the task's own."""
    return dict(spec["settings"]) | dict(spec["tasks"][task].get("settings") or {})


def plan(tiers: list[str], seeds: list[int], methods: list[str], tasks: list[str] | None):
    """The runs of `tiers` x `seeds` x `methods`, seed by seed: a task's `seeds` and the
    tier's `method_seeds` (a method run on fewer seeds, to fit the budget) leave some out."""
    runs = []
    for seed in seeds:
        for tier in tiers:
            spec = load_tier(tier)
            specs, method_seeds = spec["tasks"], _method_seeds(tier, spec)
            for task in [t for t in tasks if t in specs] if tasks else specs:
                if seed not in specs[task].get("seeds", SEEDS):
                    continue
                for method in methods:
                    if method not in method_seeds or seed in method_seeds[method]:
                        runs.append(Run(tier, task, method, seed))
    # post-hoc methods need their MLE run: keep mle before them (it is first in METHODS)
    return runs


def left_out(tiers: list[str], seeds: list[int], methods: list[str], tasks: list[str] | None):
    """One line per tier and method whose `method_seeds` leave asked-for seeds out of the
    plan, so that a command that plans nothing says why instead of "0 runs"."""
    lines = []
    for tier in tiers:
        spec = load_tier(tier)
        for method, kept in _method_seeds(tier, spec).items():
            dropped = [s for s in seeds if s not in kept]
            if method in methods and dropped and (tasks is None or set(tasks) & set(spec["tasks"])):
                word = "seed" if len(dropped) == 1 else "seeds"
                lines.append(
                    f"tier {tier} runs {method} on seeds {', '.join(map(str, kept))} only "
                    f"(method_seeds in {TIERS[tier].name}): {word} "
                    f"{', '.join(map(str, dropped))} left out"
                )
    return lines


def _method_seeds(tier: str, spec: dict) -> dict[str, list[int]]:
    """The tier's `method_seeds`, checked: known methods, each with a list of seeds."""
    out = spec.get("method_seeds") or {}
    for method, seeds in out.items():
        if method not in REGISTRY:
            raise ValueError(
                f"tier {tier}: method_seeds names unknown method {method!r}; known: "
                + ", ".join(methods())
            )
        if not isinstance(seeds, list) or not all(isinstance(x, int) for x in seeds):
            raise ValueError(f"tier {tier}: method_seeds.{method} must be a list of seeds")
    return out


def source_run(run: Run) -> Run | None:
    """The run `run` starts from (a post-hoc method's, the ensemble's member 0), if any."""
    method = REGISTRY[run.method]
    source = method.post_hoc_of or method.member_zero_from
    return Run(run.tier, run.task, source, run.seed) if source else None


def other_sets(task: dict) -> list:
    """The sets a task's runs are also evaluated on: its `eval_datasets`, then its `ood`."""
    extra = list(task.get("eval_datasets") or [])
    if task.get("ood") and task["ood"] not in extra:
        extra.append(task["ood"])
    return extra


def command(run: Run) -> list[str]:
    spec = load_tier(run.tier)
    task = spec["tasks"][run.task]
    settings = task_settings(spec, run.task)
    settings |= {
        "dataset": task["dataset"],
        "eval_datasets": other_sets(task),
        "method": run.method,
        "seed": run.seed,
        "output_dir": str(run.out),
        "eval_samples": eval_samples(run.method),
    }
    options = (spec.get("method_options") or {}).get(run.method)
    if options:
        settings["method_options"] = dict(options)
    if post_hoc_source(run.method):
        settings |= {"init_from": str(source_run(run).out), "max_steps": 0}
    overrides = []
    for key, value in _flatten(settings):
        overrides += ["--set", f"{key}={json.dumps(value)}"]
    cmd = [str(ROOT / ".venv" / "bin" / "blob"), "train", *overrides]
    if RunDir(run.out).config.is_file():
        cmd.append("--resume")
    return cmd


def _flatten(settings: dict, prefix: str = ""):
    for key, value in settings.items():
        if isinstance(value, dict) and key in ("adapter", "method_options"):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
