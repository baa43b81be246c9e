"""How far a Bayesian adapter's posterior has formed: sigma against its init and its mean.

Read these before any calibration number: a posterior std still at its init
(eps^2 ~ 0.002) makes N samples predict exactly as the mean, and sigma far above |mu| (the
KL has pulled the means to 0) makes a model that has stopped learning. Statistics are of
the matrix BLoB makes random, A (for BBB, its A too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .adapter_model import BlobModel
from .atomic import atomic_path

FORMED_FACTOR = 2.0  # a posterior whose mean sigma is under this x its init has not formed
COLLAPSE_RATIO = 10.0  # median sigma/|mu| above this: the KL has pulled the means to ~0
SAME_PROBS_TOL = 1e-5  # N samples "equal" N=0 when no probability moves more than this


@torch.no_grad()
def sigma_stats(model: BlobModel, per_layer: bool = False) -> dict[str, Any] | None:
    """``sigma_mean`` and ``sigma_ratio_median`` (median of sigma / |mu| over every entry
    of every Bayesian A), and per layer with `per_layer`; None for a model with no
    Bayesian layer."""
    layers = model.bayesian_layers()
    if not layers:
        return None
    from .sharding import full

    sigmas, ratios, rows = [], [], {}
    for name, layer in layers.items():  # whole tensors under sharding (all processes call)
        std = full(layer.std_A.detach()).float().flatten().cpu()
        ratio = std / full(layer.lora_A.detach()).float().flatten().cpu().abs().clamp_min(1e-12)
        sigmas.append(std)
        ratios.append(ratio)
        if per_layer:
            rows[name] = {
                "sigma_mean": float(std.mean()),
                "sigma_ratio_median": float(ratio.median()),
            }
    out: dict[str, Any] = {
        "sigma_mean": float(torch.cat(sigmas).mean()),
        "sigma_ratio_median": float(torch.cat(ratios).median()),
    }
    if per_layer:
        out["layers"] = rows
    return out


def health_warnings(
    stats: dict[str, Any] | None,
    sigma0: float | None,
    same_as_mean: list[int],
) -> list[str]:
    """One line per sign that the posterior has not formed (empty when it has)."""
    out = []
    if stats is not None and sigma0 is not None:
        if stats["sigma_mean"] < FORMED_FACTOR * sigma0:
            out.append(
                f"the posterior has not formed: mean sigma {stats['sigma_mean']:.4f} is under "
                f"{FORMED_FACTOR:g}x its init {sigma0:.4f}; train longer or keep kl_plan=budget "
                "(a larger kl_clock_scale moves sigma further)"
            )
    if stats is not None and stats["sigma_ratio_median"] > COLLAPSE_RATIO:
        out.append(
            f"posterior collapse: median sigma/|mu| is {stats['sigma_ratio_median']:.3g} (> "
            f"{COLLAPSE_RATIO:g}), the KL has pulled the means toward 0 and the samples are "
            "mostly noise; lower kl_clock_scale or train longer"
        )
    for n in same_as_mean:
        out.append(
            f"N={n} predictions equal N=0's (no probability moved more than {SAME_PROBS_TOL:g}): "
            "the samples add nothing; the posterior has not formed"
        )
    return out


def health_line(
    stats: dict[str, Any], sigma0: float | None, mi: tuple[int, float] | None = None
) -> str:
    """The one line a run prints about its posterior. sigma/|mu| says the posterior formed;
    `mi` (N, the samples' mean mutual information) says whether it reaches the
    predictions: a formed posterior can still move them very little."""
    grown = f" ({stats['sigma_mean'] / sigma0:.1f}x its init {sigma0:.4f})" if sigma0 else ""
    reach = f"; at N={mi[0]} the samples' mean mutual information is {mi[1]:.2g} nats" if mi else ""
    return (
        f"posterior: mean sigma {stats['sigma_mean']:.4f}{grown}, "
        f"median sigma/|mu| {stats['sigma_ratio_median']:.3g}{reach}"
    )


def plot_sigma(log_rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """sigma/|mu| (median) and mean sigma against the step, from a run's metrics log."""
    rows = [r for r in log_rows if "sigma_mean" in r]
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(steps, [r["sigma_ratio_median"] for r in rows])
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_ylabel("median sigma / |mu|")
    right.plot(steps, [r["sigma_mean"] for r in rows], color="tab:orange")
    right.set_xlabel("step")
    right.set_ylabel("mean sigma")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
