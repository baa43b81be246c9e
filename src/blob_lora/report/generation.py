"""Generation results (task=generate) as tables: one row per (dataset, method and N), the
metrics as columns (mean ± std over seeds), and the lines `blob train/eval` print."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .keys import GEN_DIGITS, GEN_LABELS, GEN_METRICS, is_generation  # noqa: F401
from .table import mean_std_cell, method_label

NOTE = (
    "ROUGE (rouge-score, stemmed) and BERTScore F1 in %, max over each input's references; "
    "for N=S the expectation over S samples. BERTScore runs on the offline MiniLM and is "
    "not comparable with published numbers (other models). unc. AUROC / AURC: how well the "
    "disagreement among the S samples flags a low ROUGE-L."
)


def split_rows(rows: Iterable[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """(generation rows, the others)."""
    gen, other = [], []
    for row in rows:
        (gen if is_generation(row) else other).append(row)
    return gen, other


def generation_table(rows: list[dict[str, Any]], metrics: Iterable[str] | None = None) -> str:
    """Markdown: dataset and method (with N) per line, one column per metric present."""
    wanted = list(metrics or GEN_METRICS)
    cells: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        key = (row["dataset"], method_label({**row, "method": method_with_sampler(row)}))
        for metric in wanted:
            value = row.get(metric)
            if isinstance(value, int | float):
                cells[key][metric].append(float(value))
    shown = [m for m in wanted if any(m in c for c in cells.values())]
    lines = [
        "| dataset | method | " + " | ".join(GEN_LABELS.get(m, m) for m in shown) + " |",
        "|---|---|" + "---|" * len(shown),
    ]
    for (dataset, label), values in cells.items():
        row_cells = [mean_std_cell(values.get(m, []), GEN_DIGITS.get(m, 2)) for m in shown]
        lines.append(f"| {dataset} | {label} | " + " | ".join(row_cells) + " |")
    seeds = sorted({r.get("seed") for r in rows}, key=str)
    return "\n".join(lines) + f"\n\nmean ± std over seeds {seeds}; (1): a single seed. {NOTE}\n"


def method_with_sampler(row: dict[str, Any]) -> str:
    """The method with how its samples differ: `blob` (weights) or `mle+decoding`."""
    sampler = row.get("sampler")
    return f"{row['method']}+decoding" if sampler == "decoding" else row["method"]


def print_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The table `blob train` / `blob eval` print for generation rows."""
    head = (
        f"{'dataset':<12} {'method':<8} {'N':>3} {'R-1':>6} {'R-2':>6} {'R-L':>6} "
        f"{'BERTSc':>6} {'NLL':>7} {'uAUROC':>6} {'AURC':>6}"
    )
    out = [head]
    for r in rows:
        vals = [_num(r.get(k), w, d) for k, w, d in (
            ("rouge1", 6, 2), ("rouge2", 6, 2), ("rougeL", 6, 2), ("bertscore_f1", 6, 2),
            ("nll", 7, 3), ("unc_auroc", 6, 3), ("aurc", 6, 3))]  # fmt: skip
        out.append(f"{r['dataset']:<12} {r['method']:<8} {r['n_samples']:>3} " + " ".join(vals))
    return out


def _num(value: Any, width: int, digits: int) -> str:
    return f"{value:>{width}.{digits}f}" if isinstance(value, int | float) else f"{'-':>{width}}"
