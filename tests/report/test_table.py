from blob_lora.report.table import markdown_table


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
