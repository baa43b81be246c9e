"""Whether every run of a tier trained on the same rows for the same budget and was scored
on the same evaluation rows: checked from each record's stored run config, not assumed
from the tier file (a run started before a tier file changed would otherwise pass)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import table_plan

# what decides the rows a run trains and is scored on, and how it reads them
SHARED = (
    "model",
    "dataset",
    "train_split",
    "train_limit",
    "calib_fraction",
    "eval_split",
    "eval_datasets",
    "eval_limit",
    "eval_subset_seed",
    "max_length",
    "precision",
)


def _configs(tier: str) -> tuple[dict[str, dict], list[str]]:
    """{task/run: its run config with `budget` added (a post-hoc run: its source's steps)},
    and the records that stored no config (a relabelled record is its source's run)."""
    configs: dict[str, dict] = {}
    missing = []
    for path in sorted((table_plan.RECORDS / tier).glob("*/*.json")):
        name = f"{path.parent.name}/{path.stem}"
        record = json.loads(path.read_text())
        if record.get("same_as"):  # another method's run relabelled (map): checked there
            continue
        config = record.get("run_config")
        if not config:
            missing.append(name)
            continue
        configs[name] = config
    for config in configs.values():
        source = config.get("init_from")
        budget = config.get("max_steps")
        if source and not budget:  # post-hoc: trained no step, scored its source's adapter
            rel = "/".join(Path(source).parts[-2:])  # task/run, wherever it was recorded
            budget = (configs.get(rel) or {}).get("max_steps")
        config["budget"] = budget
    return configs, missing


def settings_lines(tier: str) -> list[str]:
    """One line that says what every run shares, or which settings differ and where."""
    configs, missing = _configs(tier)
    if not configs:
        return []
    by_task: dict[str, dict[str, dict[str, list[str]]]] = {}
    for name, config in configs.items():
        task = name.split("/")[0]
        for key in (*SHARED, "budget"):
            value = json.dumps(config.get(key), sort_keys=True)
            by_task.setdefault(task, {}).setdefault(key, {}).setdefault(value, []).append(name)
    differ, same = [], []
    for task, keys in by_task.items():
        for key, values in keys.items():
            if len(values) > 1:
                where = "; ".join(f"{v} ({', '.join(n.split('/')[1] for n in ns)})"
                                  for v, ns in values.items())  # fmt: skip
                differ.append(f"{task} {key}: {where}")
        budget = next(iter(keys["budget"]))
        rows = ", ".join(f"{k} {next(iter(keys[k]))}" for k in ("eval_limit", "eval_subset_seed"))
        same.append(f"{task}: {budget} steps, {rows}")
    unchecked = f"; no stored config: {', '.join(missing)}" if missing else ""
    if differ:
        return ["", f"**Settings differ between runs:** {' | '.join(differ)}{unchecked}."]
    return [
        "",
        f"Checked from the {len(configs)} records' stored run configs: every run shares "
        f"{', '.join(SHARED)} and its budget (a post-hoc run: its source's): "
        f"{'; '.join(same)}{unchecked}.",
    ]
