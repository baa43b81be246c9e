"""Reliability diagrams: accuracy against confidence per bin, with the ECE in the title.

Built on ``matplotlib.figure.Figure`` rather than pyplot, so no backend or global figure
state is touched (safe in headless runs and inside other people's notebooks); PNGs are
rendered by Agg.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_path
from ..metrics import ArrayLike, reliability_bins


def reliability_figure(
    probs: ArrayLike, labels: ArrayLike, title: str | None = None, n_bins: int = 15
) -> Figure:
    """The diagram as a Figure: accuracy bars, the gap to the diagonal, and a count histogram."""
    bins = reliability_bins(probs, labels, n_bins)
    n = int(bins.count.sum())
    centers = (bins.edges[:-1] + bins.edges[1:]) / 2.0
    width = 1.0 / len(centers)
    full = bins.count > 0

    fig = Figure(figsize=(5.0, 6.0), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])

    top.bar(
        centers[full],
        bins.accuracy[full],
        width=width,
        color="tab:blue",
        edgecolor="black",
        linewidth=0.5,
        label="accuracy",
    )
    # The gap drawn from accuracy up (or down) to the mean confidence of the bin.
    gap = bins.confidence[full] - bins.accuracy[full]
    top.bar(
        centers[full],
        gap,
        bottom=bins.accuracy[full],
        width=width,
        color="tab:red",
        alpha=0.3,
        edgecolor="tab:red",
        hatch="//",
        linewidth=0.5,
        label="gap to confidence",
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize="small")
    heading = f"ECE = {100.0 * bins.ece:.2f}%  (n={n}, {len(centers)} bins)"
    top.set_title(f"{title}\n{heading}" if title else heading)

    bottom.bar(centers, bins.count, width=width, color="gray", edgecolor="black", linewidth=0.5)
    bottom.set_xlabel("confidence (top-label probability)")
    bottom.set_ylabel("count")
    bottom.set_xticks(np.linspace(0, 1, 6))
    return fig


def plot_reliability(
    probs: ArrayLike,
    labels: ArrayLike,
    path: str | os.PathLike[str],
    title: str | None = None,
    n_bins: int = 15,
) -> Path:
    """Write the reliability diagram as a PNG at `path` and return the path.

    Written to a temporary file in the same directory and moved into place with
    os.replace, so a reader never sees a half-written image and a crash leaves none.
    """
    path = Path(path)
    fig = reliability_figure(probs, labels, title=title, n_bins=n_bins)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
