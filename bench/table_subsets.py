"""A tier's evaluation rows as a file, bench/results/eval_subsets/<tier>.json: for every
task and evaluation set, the ids (and labels) of the rows its runs were scored on.

A run draws its rows from its config (the eval_limit subset drawn with eval_subset_seed),
so the file is not an input: it is what a reader checks a cell against without re-running
the loader, and what the report checks every record's row count and majority class
against: the digest of the labels it was scored on, in order (`labels_sha256`, stamped
from its saved predictions when it is recorded), else its row count and majority class.
So "the same rows for every method and seed" is measured, not assumed, and the check reads
only committed files: a new session without runs/ reports the same."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from bench import table_plan
from blob_lora.atomic import write_text_atomic


def labels_digest(labels: list[int]) -> str:
    """The labels of a set's rows, in order, as one hash: what a record stores of them."""
    return hashlib.sha256(json.dumps([int(x) for x in labels]).encode()).hexdigest()


def scored_labels_digest(predictions: Path, row: dict) -> str | None:
    """The digest of the labels a result row was scored on, from the run's saved
    predictions (None where there are none, or no labels)."""
    from safetensors import safe_open

    path = predictions / f"final-{row['dataset']}-N{row['n_samples']}.safetensors"
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as f:
        return labels_digest(f.get_tensor("labels").tolist()) if "labels" in f.keys() else None


def stamp_records(tier: str) -> int:
    """Add `labels_sha256` to the rows of a tier's records made before it was stored, from
    the run folders that are here; returns the number of rows stamped."""
    stamped = 0
    for path in sorted((table_plan.RECORDS / tier).glob("*/*.json")):
        record = json.loads(path.read_text())
        predictions = table_plan.RUNS / tier / path.parent.name / path.stem / "predictions"
        before = stamped
        for row in record.get("rows", []):
            if row.get("labels_sha256") is None and row.get("n_examples") is not None:
                digest = scored_labels_digest(predictions, row)
                if digest is not None:
                    row["labels_sha256"] = digest
                    stamped += 1
        if stamped > before:
            write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    return stamped


def eval_rows(config: dict) -> dict[str, dict]:
    """{set: its split, eval_limit, subset seed, row ids and labels}, drawn as a run with
    stored run config `config` drew them: its dataset's eval split, and each of its
    eval_datasets' OOD split."""
    from blob_lora.data import load_examples
    from blob_lora.data.specs import parse_spec

    seed = config["eval_subset_seed"]
    seed = config["seed"] if seed is None else seed
    out = {}
    for name in (config["dataset"], *(config.get("eval_datasets") or [])):
        split = config["eval_split"] if name == config["dataset"] else parse_spec(name)[0].ood_split
        examples = load_examples(name, split, limit=config["eval_limit"], seed=seed)
        out[name] = {
            "split": split,
            "eval_limit": config["eval_limit"],
            "eval_subset_seed": seed,
            "ids": [e.id for e in examples],
            "labels": [e.label for e in examples],
        }
    return out


def write_subsets(tier: str, results: Path) -> tuple[Path | None, list[str]]:
    """Write the tier's file from its records' stored configs (each task's first run;
    `bench.table_settings` says whether the others share it), and check every record's
    rows against it: (the file, or None without configs; one line per mismatch)."""
    tasks: dict[str, dict] = {}
    records = sorted((table_plan.RECORDS / tier).glob("*/*.json"))
    for path in records:
        config = json.loads(path.read_text()).get("run_config")
        if config and path.parent.name not in tasks:
            tasks[path.parent.name] = eval_rows(config)
    if not tasks:
        return None, []
    out = results / "eval_subsets" / f"{tier}.json"
    write_text_atomic(out, json.dumps(tasks, indent=1) + "\n")
    return out, [m for path in records for m in _mismatches(path, tasks)]


def _mismatches(path: Path, tasks: dict[str, dict]) -> list[str]:
    """How a record's scored rows differ from the file's: count or majority class."""
    sets = tasks.get(path.parent.name, {})
    out = []
    for row in json.loads(path.read_text()).get("rows", []):
        drawn = sets.get(row["dataset"])
        if drawn is None or row.get("n_examples") is None:
            continue
        labels = drawn["labels"]
        where = f"{path.parent.name}/{path.stem} on {row['dataset']} N={row['n_samples']}"
        if row.get("labels_sha256"):
            if row["labels_sha256"] != labels_digest(labels):
                out.append(f"{where}: other labels, in order, than the file's")
            continue
        majority = 100.0 * Counter(labels).most_common(1)[0][1] / len(labels)
        if row["n_examples"] != len(labels):
            out.append(f"{where}: {row['n_examples']} rows, the file has {len(labels)}")
        elif "majority_acc" in row and abs(row["majority_acc"] - majority) > 1e-6:
            out.append(
                f"{where}: majority class {row['majority_acc']:.2f}, the file's {majority:.2f}"
            )
    return out


def subset_lines(tier: str, results: Path) -> list[str]:
    """The report's line (the report is written in `results`): where the tier's rows are
    written, and whether every record was scored on them."""
    out, mismatches = write_subsets(tier, results)
    if out is None:
        return []
    where = out.relative_to(results)
    if mismatches:
        return ["", f"**Records scored on other rows than {where}:** {'; '.join(mismatches)}."]
    return [
        "",
        f"The evaluation rows (ids and labels of every set) are in [{where}]({where}); every record "
        "was scored on them (the labels it saved, in order; a record without them: its row "
        "count and majority class).",
    ]


def main() -> int:
    """`python -m bench.table_subsets stamp TIER...`: stamp records made before
    `labels_sha256` was stored (from the run folders here)."""
    import sys

    args = sys.argv[1:]
    if not args or args[0] != "stamp":
        raise SystemExit("usage: python -m bench.table_subsets stamp TIER [TIER ...]")
    for tier in args[1:]:
        print(f"{tier}: {stamp_records(tier)} rows stamped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
