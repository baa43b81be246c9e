"""The vocabulary of results rows: which keys are metrics, how tables name and round them,
and which rows are generation rows. A leaf module, so the row checks, the classification
table and the generation table all read one list."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

METRICS = ("acc", "ece", "nll", "sigma_mean", "sigma_ratio_median", "mean_mi")
# rows only where a method has them: a posterior (sigma), sampled predictions (mean_mi)
OPTIONAL = ("sigma_mean", "sigma_ratio_median", "mean_mi")
# a property of the trained posterior, the same at every N: one row per run, not per N
PER_RUN = ("sigma_mean", "sigma_ratio_median")
LABELS = {
    "acc": "ACC (%) ↑",
    "ece": "ECE (%) ↓",
    "nll": "NLL ↓",
    "brier": "Brier ↓",
    "sigma_mean": "mean σ",
    "sigma_ratio_median": "median σ/|μ|",
    "mean_mi": "mean MI of the samples (nats)",
}
DIGITS = {"nll": 3, "brier": 3, "sigma_mean": 4, "sigma_ratio_median": 3, "mean_mi": 4}

GEN_METRICS = (
    "rouge1", "rouge2", "rougeL", "bertscore_f1", "nll", "unc_auroc", "aurc",
    "sigma_mean", "sigma_ratio_median",
)  # fmt: skip
GEN_LABELS = {
    "rouge1": "ROUGE-1 ↑",
    "rouge2": "ROUGE-2 ↑",
    "rougeL": "ROUGE-L ↑",
    "rougeL_oracle": "ROUGE-L best of S ↑",
    "bertscore_f1": "BERTScore F1 ↑",
    "nll": "NLL/token ↓",
    "unc_auroc": "unc. AUROC ↑",
    "aurc": "AURC ↓",
    "disagreement": "disagreement",
    "sigma_mean": "mean σ",
    "sigma_ratio_median": "median σ/|μ|",
}
GEN_DIGITS = {"nll": 3, "unc_auroc": 3, "aurc": 3, "disagreement": 3, "sigma_mean": 4,
              "sigma_ratio_median": 3}  # fmt: skip


def is_generation(row: dict[str, Any]) -> bool:
    return row.get("task") == "generate" or "rougeL" in row


def metric_keys(generation: bool, asked: Iterable[str] = ()) -> set[str]:
    """The keys a table reads as numbers: the known metrics of the row's kind and any
    asked for with --metrics."""
    if generation:
        known = set(GEN_METRICS) | set(GEN_LABELS)
    else:
        known = set(METRICS) | set(LABELS) | {"majority_acc"}
    return known | set(asked)
