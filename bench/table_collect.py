"""The report's input: the result rows of every finished run, with their reliability bins,
and the OOD-detection AUROCs, both recomputed from the predictions the runs saved, kept as
committed records (table_records). No formatting here (see table_report)."""

from __future__ import annotations

import json
import math

from bench.table_plan import SEEDS, Run, eval_samples, load_tier, methods
from bench.table_records import (
    map_is_mle,
    provenance,
    read_record,
    relabel_mle_as_map,
    write_record,
)
from bench.table_status import _machine_s, _starts
from bench.table_subsets import scored_labels_digest
from blob_lora.run.files import RunDir, dataset_label

SCORES = ("max_prob", "entropy", "mutual_information")


def collect(tiers: list[str]) -> tuple[list[dict], list[dict]]:
    """Result rows of every finished run (with `tier`, `trained_on`) and OOD-detection rows,
    from the committed records; a run finished in runs/ has its record (re)written first."""
    rows, detection = [], []
    for tier in tiers:
        for task_key in load_tier(tier)["tasks"]:
            for method in methods():
                for seed in SEEDS:
                    run = Run(tier, task_key, method, seed)
                    if run.trained and _newer_than_record(run):
                        record_run(run)
                    elif run.trained:
                        add_reliability(run)
                    elif map_is_mle(run) and _is_relabelled_or_missing(run):
                        relabel_mle_as_map(run)  # writes only what changed
                    record = read_record(run)
                    if record is not None:
                        rows += record["rows"]
                        detection += record["detection"]
    return rows, detection


def _newer_than_record(run: Run) -> bool:
    """Whether the run's results in runs/ are newer than its record (a record, once
    written, is the run's result; a run trained again rewrites it)."""
    if not run.recorded:
        return True
    return RunDir(run.out).results("final").stat().st_mtime > run.record.stat().st_mtime


def _is_relabelled_or_missing(run: Run) -> bool:
    """A MAP record made from the MLE record follows it; a trained MAP run's record (from
    before MAP was relabelled) is never replaced."""
    record = read_record(run)
    return record is None or record.get("same_as") == "mle"


def reliability(run: Run, row: dict) -> dict | None:
    """The row's reliability bins (15, as its ECE) from the predictions the run saved, an
    empty bin's mean as None; None where there is no saved prediction or no label."""
    from safetensors.torch import load_file

    from blob_lora.metrics import accuracy, reliability_bins

    name = f"final-{row['dataset']}-N{row['n_samples']}.safetensors"
    path = RunDir(run.out).predictions / name
    if row.get("acc") is None or not path.is_file():
        return None
    pred = load_file(str(path))
    probs, labels = pred["probs"].double().numpy(), pred["labels"].numpy()
    bins = reliability_bins(probs, labels)
    if not (math.isclose(100.0 * bins.ece, row["ece"], abs_tol=1e-6)
            and math.isclose(100.0 * accuracy(probs, labels), row["acc"], abs_tol=1e-6)):  # fmt: skip
        return None  # a prediction file that is not the row's (a re-evaluation cut short)
    return bins_record(bins)


def bins_record(bins) -> dict:
    """ReliabilityBins as JSON: counts, and each bin's means (None where it is empty)."""

    def means(values) -> list[float | None]:
        return [float(v) if n else None for v, n in zip(values, bins.count, strict=True)]

    return {
        "count": bins.count.tolist(),
        "confidence": means(bins.confidence),
        "accuracy": means(bins.accuracy),
    }


def add_reliability(run: Run) -> None:
    """Give a record written before rows carried their bins the bins of its run, where the
    run in runs/ is the one the record was made from (the same results, row by row)."""
    record = read_record(run)
    if record is None or all("reliability" in r for r in record["rows"]):
        return
    here = json.loads(RunDir(run.out).results("final").read_text())
    same = {(r["dataset"], r["n_samples"]): _metrics(r) for r in here}
    rows = []
    for r in record["rows"]:
        if "reliability" not in r and same.get((r["dataset"], r["n_samples"])) == _metrics(r):
            r = r | {"reliability": reliability(run, r)}
        rows.append(r)
    if rows != record["rows"]:
        write_record(run, **(record | {"rows": rows}))


def _metrics(row: dict) -> tuple:
    """The row's results, NaN made comparable (a diverged run's NaN equals itself)."""
    return tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in
                 (row.get(k) for k in ("acc", "ece", "nll")))  # fmt: skip


def record_run(run: Run) -> None:
    """Write the committed record of a run finished in runs/: its result rows, the
    OOD-detection AUROCs recomputed from the predictions it saved, and its cost."""
    from safetensors.torch import load_file

    from blob_lora.metrics import auroc

    spec = load_tier(run.tier)
    task = spec["tasks"][run.task]
    per_run = {"machine_s": _machine_s(run), "starts": _starts(run)}
    meta = provenance()
    rows = [
        {"tier": run.tier, "trained_on": run.task, **row, "model": spec["model_label"]}
        | per_run
        | meta
        | {"reliability": reliability(run, row)}
        | {"labels_sha256": scored_labels_digest(RunDir(run.out).predictions, row)}
        for row in json.loads(RunDir(run.out).results("final").read_text())
    ]
    detection = _detection_rows(run, task, spec, load_file, auroc) if task.get("ood") else []
    detection = [d | meta for d in detection]
    # the resolved settings the run trained and evaluated with, so a cell can be checked
    config = json.loads(RunDir(run.out).config.read_text())
    write_record(run, rows, detection, **per_run, run_config=config)


def _detection_rows(run: Run, task: dict, spec: dict, load_file, auroc) -> list[dict]:
    out = []
    inside, outside = _ds_label(task["dataset"]), _ds_label(task["ood"])
    for n in eval_samples(run.method):
        predictions = RunDir(run.out).predictions
        p_in = predictions / f"final-{inside}-N{n}.safetensors"
        p_out = predictions / f"final-{outside}-N{n}.safetensors"
        if not (p_in.is_file() and p_out.is_file()):
            continue
        a, b = load_file(str(p_in)), load_file(str(p_out))
        row = {
            "tier": run.tier,
            "model": spec["model_label"],
            "trained_on": run.task,
            "ood": outside,
            "method": run.method,
            "n_samples": n,
            "seed": run.seed,
        }
        for score in SCORES:
            if score == "mutual_information" and n == 0:
                continue
            row[f"auroc_{score}"] = auroc(_score(a, score), _score(b, score))
        out.append(row)
    return out


def _score(pred: dict, score: str):
    """Higher = more uncertain = more likely out of distribution."""
    probs = pred["probs"].double()
    if score == "max_prob":
        return (-probs.max(-1).values).numpy()
    if score == "entropy":
        return (-(probs * probs.clamp_min(1e-12).log()).sum(-1)).numpy()
    return pred["mutual_information"].double().numpy()


def _ds_label(ds: str | dict) -> str:
    """The label a run gives a dataset in its result rows and file names."""
    return dataset_label(json.dumps(ds) if isinstance(ds, dict) else ds)
