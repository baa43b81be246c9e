"""A post-hoc run's predictions from its source run's saved ones, where predicting again
would only repeat them.

A temperature leaves the source's weights and noise as they are: its predictive is a
fixed map of the source's. With the same adapter, evaluation rows, batches and seed, the
source's final predictions of a set are what predicting again would give, so the map is
applied to them instead. For BLoB + TS on Gemma that skips the N=10 passes over every
evaluation set (about 20 minutes a run here). Anything short of the same evaluation falls
back to predicting: another setting, an adapter newer than its predictions, other rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import BlobLoraError
from .config import RunConfig
from .context import RunContext
from .files import RUN_CONFIG, as_saved, dataset_label

# settings a post-hoc run may hold apart from its source without changing a prediction
NOT_PREDICTIVE = (
    "method", "method_options", "output_dir", "max_steps", "init_from", "eval_samples",
    "eval_every", "save_every",
)  # fmt: skip


def source_predictions(
    ctx: RunContext, name: str, n: int, labels: list[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(probs, labels, mutual information) of set `name` at N through the method's map of
    its source's predictive, or None where the set must be predicted again."""
    cfg, method = ctx.cfg, ctx.setup.method
    if not (cfg.init_from and method.post_hoc_of):
        return None
    source = Path(cfg.init_from)
    saved = _same_evaluation(cfg, source, method.post_hoc_of, name, n)
    if saved is None or saved["labels"].tolist() != labels:
        return None
    probs = method.map_source_predictive(ctx.setup.model, saved["probs"], n)
    if probs is None:
        return None
    return probs.float(), saved["labels"], saved["mutual_information"]


def _same_evaluation(
    cfg: RunConfig, source: Path, source_method: str, name: str, n: int
) -> dict[str, torch.Tensor] | None:
    """The source's final predictions of `name` at N, when its run evaluated them as this
    run would, with the adapter this run loaded."""
    preds = source / "predictions" / f"final-{dataset_label(name)}-N{n}.safetensors"
    adapter = source / "adapter"
    if not (preds.is_file() and (source / RUN_CONFIG).is_file() and adapter.is_dir()):
        return None
    if any(f.stat().st_mtime > preds.stat().st_mtime for f in adapter.iterdir()):
        return None  # trained further after its evaluation
    try:
        theirs = as_saved(RunConfig.from_saved(json.loads((source / RUN_CONFIG).read_text())))
        tensors = load_file(str(preds))
    except (OSError, ValueError, BlobLoraError, SafetensorError):
        return None
    mine = as_saved(cfg)
    if theirs["method"] != source_method or any(
        mine[k] != theirs.get(k) for k in mine if k not in NOT_PREDICTIVE
    ):
        return None
    if set(tensors) != {"probs", "labels", "mutual_information"}:
        return None
    return tensors
