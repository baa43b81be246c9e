"""The tier's evaluation-rows file: the rows a run draws, written once, and every record
and saved prediction checked against it."""

import json

import torch
from safetensors.torch import save_file

from bench import table_plan, table_subsets
from blob_lora.data import load_examples

CONFIG = {
    "dataset": "mrpc",
    "eval_split": "validation",
    "eval_datasets": ["rte"],
    "eval_limit": 100,
    "eval_subset_seed": 0,
    "seed": 2,
}


def _record(root, name, config, rows):
    path = root / "records" / "oc" / "mrpc" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": rows, "run_config": config}))


def _row(dataset, labels, n=0):
    majority = 100.0 * max(labels.count(c) for c in set(labels)) / len(labels)
    return {"dataset": dataset, "n_samples": n, "n_examples": len(labels), "acc": 50.0,
            "majority_acc": majority}  # fmt: skip


def test_the_file_holds_the_rows_a_run_draws_and_a_record_on_other_rows_is_named(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(table_plan, "RECORDS", tmp_path / "records")
    monkeypatch.setattr(table_plan, "RUNS", tmp_path / "runs")
    results = tmp_path / "results"

    def line() -> str:
        (out,) = [x for x in table_subsets.subset_lines("oc", results) if x]
        return out

    drawn = load_examples("mrpc", "validation", limit=100, seed=0)  # the subset seed, not seed 2
    rte = load_examples("rte", "validation", limit=100, seed=0)
    labels = [e.label for e in drawn]
    _record(tmp_path, "mle-s2", CONFIG, [_row("mrpc", labels), _row("rte", [e.label for e in rte])])

    assert line().startswith("The evaluation rows") and "(eval_subsets/oc.json)" in line()
    assert "(2 by row count and majority class)" in line()
    written = json.loads((results / "eval_subsets" / "oc.json").read_text())["mrpc"]
    assert written["mrpc"]["ids"] == [e.id for e in drawn]
    assert written["rte"]["labels"] == [e.label for e in rte]
    assert written["rte"]["split"] == "validation"

    # a record scored on another draw (the run's own seed) is named by its majority class
    other = [e.label for e in load_examples("mrpc", "validation", limit=100, seed=2)]
    assert other != labels
    _record(tmp_path, "blob-s2", CONFIG, [_row("mrpc", other, n=10)])
    assert line().startswith("**Records scored on other rows than eval_subsets/oc.json:**")
    assert "mrpc/blob-s2 on mrpc N=10: majority class" in line() and "mle-s2" not in line()

    # the labels a run saved are stamped into its record and checked in order: two rows
    # swapped keep the count and the majority class, not the digest
    saved = tmp_path / "runs" / "oc" / "mrpc" / "blob-s2" / "predictions"
    saved.mkdir(parents=True)
    _record(tmp_path, "blob-s2", CONFIG, [_row("mrpc", labels, n=10)])
    first = labels.index(1 - labels[0])
    swapped = [labels[first], *labels[1:first], labels[0], *labels[first + 1 :]]
    save_file({"labels": torch.tensor(swapped)}, str(saved / "final-mrpc-N10.safetensors"))
    assert line().startswith("The evaluation rows")  # not stamped yet: count and majority agree
    assert table_subsets.stamp_records("oc") == 1
    assert "mrpc/blob-s2 on mrpc N=10: other labels, in order" in line()
    save_file({"labels": torch.tensor(labels)}, str(saved / "final-mrpc-N10.safetensors"))
    _record(tmp_path, "blob-s2", CONFIG, [_row("mrpc", labels, n=10)])
    assert table_subsets.stamp_records("oc") == 1 and line().startswith("The evaluation rows")
    assert "1 by their labels, in order" in line()


def test_sets_with_another_tasks_labels_or_none_in_the_file_are_not_passed_silently(
    tmp_path, monkeypatch
):
    """An OOD set scored with another task's labels is saved with -1s: its rows are checked
    by count, never stamped; a row whose set the file lacks, or with no count, is named."""
    monkeypatch.setattr(table_plan, "RECORDS", tmp_path / "records")
    monkeypatch.setattr(table_plan, "RUNS", tmp_path / "runs")
    results = tmp_path / "results"
    config = CONFIG | {"eval_datasets": ["trec"], "eval_limit": 50}
    trec = load_examples("trec", "validation", limit=50, seed=0)  # as a run draws its OOD set
    foreign = {"dataset": "trec", "n_samples": 0, "n_examples": 50, "labels": "another task's"}
    mrpc = [e.label for e in load_examples("mrpc", "validation", limit=50, seed=0)]
    saved = tmp_path / "runs" / "oc" / "mrpc" / "mle-s0" / "predictions"
    saved.mkdir(parents=True)
    save_file({"labels": torch.full((50,), -1)}, str(saved / "final-trec-N0.safetensors"))
    _record(tmp_path, "mle-s0", config, [_row("mrpc", mrpc), foreign])
    assert table_subsets.stamp_records("oc") == 0  # the -1s are not the set's labels
    (line,) = [x for x in table_subsets.subset_lines("oc", results) if x]
    assert "1 by row count and majority class, 1 by row count)" in line
    written = json.loads((results / "eval_subsets" / "oc.json").read_text())["mrpc"]["trec"]
    assert written["labels"] == [e.label for e in trec] and written["eval_limit"] == 50

    _record(tmp_path, "mle-s0", config, [_row("mrpc", mrpc), foreign | {"n_examples": 49},
                                         {"dataset": "rte", "n_samples": 0, "n_examples": 9}])  # fmt: skip
    (line,) = [x for x in table_subsets.subset_lines("oc", results) if x]
    assert "mrpc/mle-s0 on trec N=0: 49 rows, the file has 50" in line
    assert "mrpc/mle-s0 on rte N=0: its set is not among the task's evaluation sets" in line


def test_rows_of_a_dataset_without_ids_are_named_by_their_content():
    """TREC has no ids: the file names its rows by a digest of each row's content, the same
    for the same row in any draw, and different for different rows."""
    config = {"dataset": "trec", "eval_limit": 40, "eval_subset_seed": 0}
    ids = table_subsets.eval_rows(config)["trec"]["ids"]
    assert len(ids) == 40 == len(set(ids)) and all(i.startswith("sha256:") for i in ids)
    everything = load_examples("trec", "validation")
    by_content = {table_subsets.row_id(e): e for e in everything}
    drawn = load_examples("trec", "validation", limit=40, seed=0)
    assert [by_content[i] for i in ids] == drawn  # each id names its row, in the draw's order
    other = table_subsets.eval_rows(config | {"eval_subset_seed": 1})["trec"]["ids"]
    assert other != ids and set(other) <= set(by_content)
    mrpc = load_examples("mrpc", "validation", limit=3, seed=0)
    assert [table_subsets.row_id(e) for e in mrpc] == [e.id for e in mrpc]  # ids kept
