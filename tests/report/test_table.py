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
         "sigma_ratio_median": 0.9},
    ]  # fmt: skip
    table = markdown_table(rows)
    assert "| ACC (%) ↑ | majority class | 68.38 (1) |" in table
    assert "| mean σ | blob (N=10) | 0.0310 (1) |" in table
    assert "| median σ/|μ| | blob (N=10) | 0.900 (1) |" in table
    assert "| mean σ | mle |" not in table


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
        ("broken.json", "is not a results file (not JSON"),
    ):
        with pytest.raises(BlobLoraError, match=message):
            load_rows([tmp_path / name])
