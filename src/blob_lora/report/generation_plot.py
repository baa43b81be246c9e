"""A plot of generation results: ROUGE-1/2/L and BERTScore F1 per method (mean ± std over
seeds), one panel per dataset. Built on a plain Figure (no pyplot state), written atomically."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .generation import GEN_LABELS, method_with_sampler
from .table import method_label

BARS = ("rouge1", "rouge2", "rougeL", "bertscore_f1")


def generation_figure(rows: list[dict[str, Any]]) -> Figure:
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    metrics = [m for m in BARS if any(isinstance(r.get(m), int | float) for r in rows)]
    fig = Figure(figsize=(max(5.0, 2.2 * len(metrics) + 2), 3.6 * len(datasets)),
                 layout="constrained")  # fmt: skip
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(len(datasets), 1, squeeze=False)[:, 0])
    for ax, dataset in zip(axes, datasets, strict=True):
        values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            if r["dataset"] == dataset:
                label = method_label({**r, "method": method_with_sampler(r)})
                for m in metrics:
                    if isinstance(r.get(m), int | float):
                        values[label][m].append(float(r[m]))
        labels = list(values)
        width = 0.8 / max(len(labels), 1)
        x = np.arange(len(metrics))
        for i, label in enumerate(labels):
            means = [statistics.fmean(values[label][m]) if values[label][m] else 0.0
                     for m in metrics]  # fmt: skip
            stds = [statistics.stdev(values[label][m]) if len(values[label][m]) > 1 else 0.0
                    for m in metrics]  # fmt: skip
            ax.bar(x + (i - (len(labels) - 1) / 2) * width, means, width, yerr=stds,
                   capsize=3, label=label)  # fmt: skip
        ax.set_xticks(x, [GEN_LABELS.get(m, m) for m in metrics])
        ax.set_ylabel("score (%)")
        ax.set_title(f"{dataset}: max over references; N=S: expected over samples")
        ax.legend(fontsize="small", loc="upper right")
    return fig
