from blob_lora.report.table import markdown_table, mean_std_cell


def test_table_mean_and_std_per_method_and_dataset():
    rows = []
    for seed, (a, b) in enumerate([(60.0, 70.0), (62.0, 74.0)]):
        rows.append(
            {
                "dataset": "rte",
                "method": "mle",
                "n_samples": 0,
                "seed": seed,
                "acc": a,
                "ece": 10.0,
                "nll": 0.7,
            }
        )
        rows.append(
            {
                "dataset": "rte",
                "method": "blob",
                "n_samples": 10,
                "seed": seed,
                "acc": b,
                "ece": 5.0 + seed,
                "nll": 0.6,
            }
        )
    table = markdown_table(rows)
    assert "| ACC (%) ↑ | mle | 61.00 ± 1.41 |" in table
    assert "| ACC (%) ↑ | blob (N=10) | 72.00 ± 2.83 |" in table
    assert "| ECE (%) ↓ | blob (N=10) | 5.50 ± 0.71 |" in table
    assert "| NLL ↓ | mle | 0.700 ± 0.000 |" in table


def test_a_single_seed_shows_no_std_and_planned_counts_show_when_short():
    table = markdown_table(
        [{"dataset": "rte", "method": "mle", "n_samples": 0, "seed": 0, "acc": 61.0}],
        metrics=["acc"],
    )
    assert "| ACC (%) ↑ | mle | 61.00 (1) |" in table and "± 0.00" not in table
    assert mean_std_cell([1.0, 3.0], 2, planned=3) == "2.00 ± 1.41 (2)"
    assert mean_std_cell([1.0, 2.0, 3.0], 2, planned=3) == "2.00 ± 1.00"
    assert mean_std_cell([], 2) == "–"


def test_the_table_shows_the_majority_class_and_sigma_rows_for_bayesian_methods():
    rows = [
        {"dataset": "mrpc", "method": "mle", "n_samples": 0, "seed": 0, "acc": 80.0,
         "ece": 5.0, "nll": 0.5, "majority_acc": 68.38},
        {"dataset": "mrpc", "method": "blob", "n_samples": 10, "seed": 0, "acc": 81.0,
         "ece": 4.0, "nll": 0.45, "majority_acc": 68.38, "sigma_mean": 0.031,
         "sigma_ratio_median": 0.9, "mean_mi": 0.0017},
    ]  # fmt: skip
    table = markdown_table(rows)
    assert "| ACC (%) ↑ | majority class | 68.38 (1) |" in table
    assert "| mean σ | blob (N=10) | 0.0310 (1) |" in table
    assert "| median σ/\\|μ\\| | blob (N=10) | 0.900 (1) |" in table
    body = [line for line in table.splitlines() if line.startswith("|")]
    assert {line.replace("\\|", "").count("|") for line in body} == {4}  # one cell count
    assert "| mean σ | mle |" not in table
    assert "| mean MI of the samples (nats) | blob (N=10) | 0.0017 (1) |" in table
    assert "| mean MI of the samples (nats) | mle |" not in table


def test_report_inputs_that_hold_no_results_are_one_line_errors(tmp_path):
    import pytest

    from blob_lora.errors import BlobLoraError
    from blob_lora.report.table import load_rows

    (tmp_path / "empty").mkdir()
    (tmp_path / "other.json").write_text('{"a": 1}')
    (tmp_path / "broken.json").write_text("{not json")
    for name, message in (
        ("empty", "holds no results"),
        ("other.json", "is not a results file: its rows need dataset, method"),
        ("broken.json", r"is not a results file \(not JSON"),
        ("missing.json", "does not exist"),
    ):
        with pytest.raises(BlobLoraError, match=message):
            load_rows([tmp_path / name])


def _run_dir(root, name, seed, lr, rows, extra_files=None):
    import json

    run = root / name
    run.mkdir()
    cfg = {"method": "blob", "dataset": "mrpc", "seed": seed, "lr": lr, "output_dir": str(run)}
    (run / "run_config.json").write_text(json.dumps(cfg))
    (run / "results-final.json").write_text(json.dumps(rows))
    for fname, content in (extra_files or {}).items():
        (run / fname).write_text(json.dumps(content))
    return run


def test_report_averages_seeds_of_one_setting_only_and_labels_the_rest(tmp_path):
    import pytest

    from blob_lora.errors import BlobLoraError
    from blob_lora.report.table import load_rows

    def row(seed, acc):
        return {"dataset": "mrpc", "method": "blob", "n_samples": 10, "seed": seed, "acc": acc}

    a0 = _run_dir(tmp_path, "a0", 0, 1e-3, [row(0, 80.0)], {"results-eval.json": [row(0, 90.0)]})
    a1 = _run_dir(tmp_path, "a1", 1, 1e-3, [row(1, 82.0)])
    b0 = _run_dir(tmp_path, "b0", 0, 2e-3, [row(0, 70.0)])
    table = markdown_table(load_rows([a0, a1, b0]), metrics=["acc"])
    assert "| ACC (%) ↑ | blob (N=10) [lr=0.001] | 81.00 ± 1.41 |" in table
    assert "| ACC (%) ↑ | blob (N=10) [lr=0.002] | 70.00 (1) |" in table
    assert "| ACC (%) ↑ | blob (N=10) [lr=0.001] [eval] | 90.00 (1) |" in table  # not merged
    copy = _run_dir(tmp_path, "copy", 0, 1e-3, [row(0, 80.0)])
    with pytest.raises(BlobLoraError, match="hold the same setting, seed and evaluation"):
        load_rows([a0, copy])


def test_an_eval_that_repeats_a_final_row_shows_once_and_a_different_one_stays_tagged(tmp_path):
    from blob_lora.report.table import load_rows

    def row(n, acc):
        return {"dataset": "mrpc", "method": "blob", "n_samples": n, "seed": 0, "acc": acc}

    final = [row(0, 80.0), row(10, 81.0)]
    again = [row(0, 80.0), row(10, 81.0), row(5, 79.0)]  # `blob eval RUN` re-scored the split
    run = _run_dir(tmp_path, "a", 0, 1e-3, final, {"results-eval.json": again})
    rows = load_rows([run])
    assert [(r["n_samples"], r.get("tag")) for r in rows] == [(5, "eval"), (0, None), (10, None)]
    table = markdown_table(rows, metrics=["acc"])
    assert table.count("blob (N=10)") == 1 and "blob (N=5) [eval]" in table


def test_a_runs_sigma_rows_appear_once_not_once_per_n():
    """sigma belongs to the trained posterior: N=0 and N=10 of one run show it once."""
    rows = [
        {"dataset": "mrpc", "method": "blob", "n_samples": n, "seed": seed, "acc": 80.0 + n,
         "ece": 5.0, "nll": 0.5, "sigma_mean": 0.03 + seed / 100, "sigma_ratio_median": 0.9,
         "mean_mi": 0.002 if n else None}
        for seed in (0, 1) for n in (0, 10)
    ]  # fmt: skip
    for row in rows:
        if row["mean_mi"] is None:
            del row["mean_mi"]
    table = markdown_table(rows)
    assert table.count("| mean σ |") == 1 and table.count("| median σ/\\|μ\\| |") == 1
    assert "| mean σ | blob (N=0) | 0.0350 ± 0.0071 |" in table
    assert "| ACC (%) ↑ | blob (N=10) | 90.00 ± 0.00 |" in table


def test_the_majority_class_is_counted_once_per_seed_not_once_per_method():
    rows = [
        {"dataset": "trec", "method": m, "n_samples": 0, "seed": s, "acc": 90.0, "ece": 5.0,
         "nll": 0.3, "majority_acc": 27.6 + s}
        for m in ("mle", "blob") for s in (0, 1)
    ]  # fmt: skip
    table = markdown_table(rows)
    assert "| ACC (%) ↑ | majority class | 28.10 ± 0.71 |" in table
    assert "| ACC (%) ↑ | majority class | 27.60 (1) |" in markdown_table(rows[:1] + rows[2:3])
