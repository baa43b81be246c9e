"""Outputs and references -> the metrics of one results row, and per-input scores.

ROUGE-1/2/L and BERTScore F1 are reported in percent: the max over an input's references
(``rouge1``, ...; how DialogSum results are published) and the mean over them
(``rouge1_mean_ref``, ...). For S samples per input a metric is its expectation over the
samples (averaged over inputs) with ``*_spread`` the mean per-input std over samples, and
``rougeL_oracle`` the best of the S samples. ``unc_auroc`` / ``aurc`` say how well the
per-input disagreement among samples flags a low ROUGE-L (the N=0 output's, or the expected
one over samples): AUROC of flagging the inputs below the median ROUGE-L (None when it is
undefined, every input scoring the same) and the area under the risk-coverage curve with
risk = 1 - ROUGE-L (fractions; lower is better).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .metrics import (
    ROUGE_TYPES,
    aurc,
    bertscore_f1,
    rouge_f1,
    rouge_scorer,
    sample_rouge,
    sample_statistics,
    uncertainty_auroc,
)


def uncertainty_quality(disagreement: Sequence[float], rouge_l: np.ndarray) -> dict[str, Any]:
    """``unc_auroc`` and ``aurc`` of the disagreement against ROUGE-L fractions (N,)."""
    try:
        auc: float | None = uncertainty_auroc(disagreement, rouge_l)
    except ValueError:  # every input of the same quality: nothing to rank
        auc = None
    return {"unc_auroc": auc, "aurc": aurc(disagreement, 1.0 - np.asarray(rouge_l))}


def mean_output_metrics(
    outputs: Sequence[str],
    references: Sequence[Sequence[str]],
    disagreement: Sequence[float] | None = None,
    bert: Any = None,
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """(row metrics, per-input scores) of one output per input (N=0). ``disagreement``:
    the samples' per-input disagreement, to score as the N=0 output's uncertainty."""
    scorer = rouge_scorer()
    per = [rouge_f1(o, refs, scorer) for o, refs in zip(outputs, references, strict=True)]
    row: dict[str, Any] = {}
    for t in ROUGE_TYPES:
        row[t] = 100.0 * float(np.mean([p[f"{t}_max"] for p in per]))
    for t in ROUGE_TYPES:
        row[f"{t}_mean_ref"] = 100.0 * float(np.mean([p[f"{t}_mean"] for p in per]))
    inputs = [{"rougeL": p["rougeL_max"]} for p in per]
    row["bertscore_f1"] = row["bertscore_f1_mean_ref"] = None
    if bert is not None:
        scores = bertscore_f1(list(outputs), references, bert)
        row["bertscore_f1"] = 100.0 * float(scores["max"].mean())
        row["bertscore_f1_mean_ref"] = 100.0 * float(scores["mean"].mean())
        for item, value in zip(inputs, scores["max"], strict=True):
            item["bertscore_f1"] = float(value)
    row["unc_auroc"] = row["aurc"] = None
    if disagreement is not None:
        row |= uncertainty_quality(disagreement, np.array([p["rougeL_max"] for p in per]))
    return row, inputs


def sample_metrics(
    samples: Sequence[Sequence[str]],
    references: Sequence[Sequence[str]],
    disagreement: Sequence[float],
    bert: Any = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(row metrics, per-input scores) of S samples per input."""
    table = sample_rouge(samples, references)
    row: dict[str, Any] = {}
    for t in ROUGE_TYPES:
        stats = sample_statistics(table[f"{t}_max"])
        row[t] = 100.0 * stats["expected"]
        row[f"{t}_spread"] = 100.0 * stats["spread"]
    for t in ROUGE_TYPES:
        row[f"{t}_mean_ref"] = 100.0 * sample_statistics(table[f"{t}_mean"])["expected"]
    rouge_l = table["rougeL_max"]
    row["rougeL_oracle"] = 100.0 * float(rouge_l.max(axis=1).mean())
    inputs: list[dict[str, Any]] = [{"rougeL": [float(v) for v in r]} for r in rouge_l]
    row["bertscore_f1"] = row["bertscore_f1_spread"] = None
    if bert is not None:
        s = len(samples[0])
        flat = [text for outs in samples for text in outs]
        refs = [r for r in references for _ in range(s)]
        scores = bertscore_f1(flat, refs, bert)["max"].reshape(len(samples), s)
        stats = sample_statistics(scores)
        row["bertscore_f1"] = 100.0 * stats["expected"]
        row["bertscore_f1_spread"] = 100.0 * stats["spread"]
        for item, values in zip(inputs, scores, strict=True):
            item["bertscore_f1"] = [float(v) for v in values]
    row["disagreement"] = float(np.mean(disagreement))
    row |= uncertainty_quality(disagreement, rouge_l.mean(axis=1))
    return row, inputs
