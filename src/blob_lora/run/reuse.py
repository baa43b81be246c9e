"""A post-hoc run's predictions from its source run's saved ones, where predicting again
would only repeat them.

A temperature leaves the source's weights and noise as they are: its predictive is a
fixed map of the source's. With the same adapter, evaluation rows, batches, seed, code
and device, the source's final predictions of a set are what predicting again would give,
so the map is applied to them instead. For BLoB + TS on Gemma that skips the N=10 passes
over every evaluation set (about 20 minutes a run here). The source's predictions carry a
fingerprint of what made them (`fingerprint`); anything short of a match falls back to
predicting: another setting, code or device, an adapter changed since, other rows, a run
that trains further, or predictions written before fingerprints were.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from pathlib import Path

import torch
import transformers
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from ..adapter_io import CONFIG_FILE, SHA256_KEY
from ..errors import BlobLoraError
from ..machine import cpu_name
from .config import RunConfig
from .context import RunContext
from .files import RUN_CONFIG, as_saved, dataset_label

# settings a post-hoc run holds apart from its source without changing a prediction
NOT_PREDICTIVE = ("method", "output_dir", "max_steps", "init_from", "eval_samples",
                  "eval_every", "save_every")  # fmt: skip
TENSORS = {"probs", "labels", "mutual_information"}


def fingerprint(ctx: RunContext, examples: list, adapter: Path) -> dict[str, str]:
    """What a set's predictions depend on beyond the run's settings (safetensors metadata)."""
    return {
        "code": _code_digest(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": _device_name(ctx.acc.device),
        "examples": hashlib.sha256(repr(examples).encode()).hexdigest(),
        "adapter": _adapter_digest(adapter),
    }


def source_predictions(
    ctx: RunContext, name: str, n: int, examples: list
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(probs, labels, mutual information) of set `name` at N through the method's map of
    its source's predictive, or None where the set must be predicted again."""
    cfg, method = ctx.cfg, ctx.setup.method
    if not (cfg.init_from and cfg.max_steps == 0 and method.post_hoc_of):
        return None
    source = Path(cfg.init_from)
    preds = source / "predictions" / f"final-{dataset_label(name)}-N{n}.safetensors"
    if not (preds.is_file() and _same_settings(cfg, source, method.post_hoc_of)):
        return None
    try:
        with safe_open(str(preds), "pt") as f:
            made_by = f.metadata() or {}
        saved = load_file(str(preds))
    except (OSError, SafetensorError):
        return None
    if made_by != fingerprint(ctx, examples, source / "adapter") or set(saved) != TENSORS:
        return None
    probs = method.map_source_predictive(ctx.setup.model, saved["probs"], n)
    if probs is None:
        return None
    return probs.float(), saved["labels"], saved["mutual_information"]


def _same_settings(cfg: RunConfig, source: Path, source_method: str) -> bool:
    """Whether the source ran `source_method` with this run's settings (those that change
    a prediction)."""
    try:
        saved = json.loads((source / RUN_CONFIG).read_text())
        theirs = as_saved(RunConfig.from_saved(saved))
    except (OSError, ValueError, BlobLoraError):
        return False
    mine = as_saved(cfg)
    return theirs["method"] == source_method and all(
        mine[k] == theirs.get(k) for k in mine if k not in NOT_PREDICTIVE
    )


def _adapter_digest(adapter: Path) -> str:
    """The saved adapter's tensor digests, as its own JSON records them ("" without one)."""
    try:
        meta = json.loads((adapter / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return ""
    return json.dumps(meta.get(SHA256_KEY) or {}, sort_keys=True)


@functools.cache
def _code_digest() -> str:
    """The package's own source: a prediction made by other code is not reused."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _device_name(device: torch.device) -> str:
    """The device and its model: other hardware rounds (and draws noise) differently."""
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)}"
    return f"{device.type} {cpu_name() or platform.processor() or platform.machine()}"
