"""A tier's evaluation rows as a file, bench/results/eval_subsets/<tier>.json: for every
task and evaluation set, the ids and labels of the rows its runs were scored on.

A run draws its rows from its config (the eval_limit subset drawn with eval_subset_seed),
so the file is not an input to any run. The report draws the rows again from the data, as
the runs did, writes them there for a reader to check a cell against, and checks every
record against them: by the digest of the labels it was scored on, in order
(`labels_sha256`, stamped from the run's saved predictions when it is recorded), else by
its row count and majority class. So "the same rows for every method and seed" is
measured, not assumed; the check needs the committed records and the data, not runs/."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from pathlib import Path

from bench import table_plan
from blob_lora.atomic import write_text_atomic
from blob_lora.run.files import dataset_label


def labels_digest(labels: list[int]) -> str:
    """The labels of a set's rows, in order, as one hash: what a record stores of them."""
    return hashlib.sha256(json.dumps([int(x) for x in labels]).encode()).hexdigest()


def scored_labels_digest(predictions: Path, row: dict) -> str | None:
    """The digest of the labels a result row was scored on, from the run's saved
    predictions; None where there are none, or none of its own (a set with another task's
    labels is saved with -1s: only its row count can be checked)."""
    from safetensors import safe_open

    path = predictions / f"final-{row['dataset']}-N{row['n_samples']}.safetensors"
    if row.get("labels") is not None or row.get("acc") is None or not path.is_file():
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


def row_id(example) -> str:
    """The example's id; where its dataset has none (TREC, AG News, BoolQ), a digest of its
    content, so the file still says which rows were scored, not only their labels."""
    if example.id is not None:
        return example.id
    fields = {k: v for k, v in dataclasses.asdict(example).items() if k != "id"}
    return "sha256:" + hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def eval_rows(config: dict) -> dict[str, dict]:
    """{set label (as result rows name it): the set as configured, its split, eval_limit,
    subset seed, row ids and labels (None for examples without one)}, drawn as a run with
    stored run config `config` drew them: its dataset's eval split, and each of its
    eval_datasets' OOD split."""
    from blob_lora.data import load_examples
    from blob_lora.data.specs import parse_spec

    seed = config.get("eval_subset_seed")
    seed = config.get("seed", 0) if seed is None else seed
    limit = config.get("eval_limit")
    out = {}
    for name in (config["dataset"], *(config.get("eval_datasets") or [])):
        own = name == config["dataset"]
        split = config.get("eval_split", "validation") if own else parse_spec(name)[0].ood_split
        examples = load_examples(name, split, limit=limit, seed=seed)
        labels = [getattr(e, "label", None) for e in examples]
        out[dataset_label(name)] = {
            "set": name,
            "split": split,
            "eval_limit": limit,
            "eval_subset_seed": seed,
            "ids": [row_id(e) for e in examples],
            "labels": None if None in labels else labels,
        }
    return out


def write_subsets(tier: str, results: Path) -> tuple[Path | None, list[str], Counter]:
    """Write the tier's file from its records' stored configs (each task's first run;
    `bench.table_settings` says whether the others share it), and check every record's
    rows against it: (the file, or None without configs; one line per mismatch; how many
    rows were checked each way)."""
    tasks: dict[str, dict] = {}
    paths = sorted((table_plan.RECORDS / tier).glob("*/*.json"))
    records = {path: json.loads(path.read_text()) for path in paths}
    for path, record in records.items():
        config = record.get("run_config")
        if config and path.parent.name not in tasks:
            tasks[path.parent.name] = eval_rows(config)
    if not tasks:
        return None, [], Counter()
    out = results / "eval_subsets" / f"{tier}.json"
    write_text_atomic(out, json.dumps(tasks, indent=1) + "\n")
    mismatches: list[str] = []
    how: Counter = Counter()
    for path, record in records.items():
        if record.get("same_as"):  # another method's run relabelled (map): checked there
            continue
        for row in record.get("rows", []):
            found = _mismatch(row, tasks.get(path.parent.name, {}), how)
            if found:
                where = f"{path.parent.name}/{path.stem} on {row['dataset']} N={row['n_samples']}"
                mismatches.append(f"{where}: {found}")
    return out, mismatches, how


def _mismatch(row: dict, sets: dict[str, dict], how: Counter) -> str | None:
    """How a record's row differs from the file's rows (None: it does not), counting in
    `how` the way it was checked."""
    drawn = sets.get(row["dataset"])
    if drawn is None:
        return "its set is not among the task's evaluation sets"
    if row.get("n_examples") is None:
        how["unchecked (no row count)"] += 1
        return None
    if row["n_examples"] != len(drawn["ids"]):
        return f"{row['n_examples']} rows, the file has {len(drawn['ids'])}"
    labels = drawn["labels"]
    if row.get("labels") is not None or labels is None:  # another task's labels, or none
        how["by row count"] += 1
        return None
    if row.get("labels_sha256"):
        how["by their labels, in order"] += 1
        return None if row["labels_sha256"] == labels_digest(labels) else "other labels, in order"
    how["by row count and majority class"] += 1
    majority = 100.0 * Counter(labels).most_common(1)[0][1] / len(labels)
    if "majority_acc" in row and abs(row["majority_acc"] - majority) > 1e-6:
        return f"majority class {row['majority_acc']:.2f}, the file's {majority:.2f}"
    return None


def subset_lines(tier: str, results: Path) -> list[str]:
    """The report's line (the report is written in `results`): where the tier's rows are
    written, and whether every record was scored on them."""
    out, mismatches, how = write_subsets(tier, results)
    if out is None:
        return []
    where = out.relative_to(results)
    if mismatches:
        return ["", f"**Records scored on other rows than {where}:** {'; '.join(mismatches)}."]
    ways = ", ".join(f"{n} {way}" for way, n in how.most_common())
    return [
        "",
        f"The evaluation rows (ids and labels of every set) are in [{where}]({where}); every "
        f"record's rows match them ({ways}).",
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
