"""Training checkpoints as safetensors + JSON: resumable, atomic, no pickles.

Optimizer and scheduler states are nested dicts of tensors and plain values; tensors go
to safetensors under generated keys, the rest to JSON with placeholders. A run's
checkpoint (`save_run_checkpoint`) holds its adapter, its optimizer and every process's
random streams, so a resume continues each exactly.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import accelerate.utils
import torch
from safetensors.torch import load_file

from ..adapter_io import (
    CONFIG_FILE,
    SHA256_KEY,
    WEIGHTS_FILE,
    load_adapter_weights,
    read_adapter_config,
    verify_sha256,
    write_dir_atomically,
)
from ..errors import CheckpointError
from ..optim import AdapterOptimizer
from .context import RunContext

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
TENSOR_TAG = "__tensor__"


def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    """Replace every tensor in a nested structure by a placeholder; collect the tensors."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}{len(tensors)}"
        tensors[key] = obj.detach().cpu().clone()
        return {TENSOR_TAG: key}
    if isinstance(obj, dict):
        if any(not isinstance(k, (str, int)) for k in obj):
            raise TypeError("state dict keys must be str or int")
        return {"__dict__": [[k, flatten_state(v, tensors, prefix)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, tensors, prefix) for v in obj]}
    if isinstance(obj, list):
        return {"__list__": [flatten_state(v, tensors, prefix) for v in obj]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint value of type {type(obj).__name__}")


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if TENSOR_TAG in obj:
            return tensors[obj[TENSOR_TAG]]
        if "__dict__" in obj:
            return {k: unflatten_state(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            return [unflatten_state(v, tensors) for v in obj["__list__"]]
        if "__tuple__" in obj:
            return tuple(unflatten_state(v, tensors) for v in obj["__tuple__"])
    return obj


def save_checkpoint(
    path: str | os.PathLike, state: dict[str, Any], files: dict | None = None
) -> None:
    """Write trainer state (and any extra files) into `path` atomically."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten_state(state, tensors)
    payload = {STATE_JSON: {"format": "blob-lora-trainer-state", "version": 1, "state": skeleton}}
    payload[STATE_TENSORS] = tensors
    payload.update(files or {})
    write_dir_atomically(path, payload)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        meta = json.loads((path / STATE_JSON).read_text())
        verify_sha256(path / STATE_TENSORS, meta.get(SHA256_KEY))
        tensors = load_file(str(path / STATE_TENSORS))
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint {path} is incomplete ({err.filename} missing)") from err
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - any parse failure means a bad file
        raise CheckpointError(f"checkpoint {path} is corrupted: {err}") from err
    if meta.get("format") != "blob-lora-trainer-state":
        raise CheckpointError(f"{path} is not a blob-lora checkpoint")
    return unflatten_state(meta["state"], tensors)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The newest complete `step-N` checkpoint in `directory`, if any."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    steps = []
    for child in directory.iterdir():
        if child.name.startswith("step-") and (child / STATE_JSON).is_file():
            try:
                steps.append((int(child.name[5:]), child))
            except ValueError:
                continue
    return max(steps)[1] if steps else None


def save_run_checkpoint(
    ctx: RunContext, ckpt_dir: Path, step: int, optimizer: AdapterOptimizer
) -> None:
    """`ckpt_dir/step-N`: the adapter, the optimizer and every process's random streams;
    the two newest are kept."""
    own = {
        "cpu": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    rng = [own]
    if ctx.acc.num_processes > 1:  # every process's streams, so a resume continues each
        rng = accelerate.utils.gather_object(rng)
    blob = ctx.setup.model
    # gathered on every process (collectives under sharding=fsdp), written by one
    optimizer_state, adapter_state = optimizer.state_dict(), blob.adapter_state_dict()
    if not ctx.main:
        return
    state = {"step": step, "optimizer": optimizer_state, "rng": rng}
    adapter = {
        CONFIG_FILE: {
            "format": "blob-lora-adapter",
            "version": 1,
            "config": blob.adapter_config.to_dict(),
        },
        WEIGHTS_FILE: adapter_state,
    }
    save_checkpoint(ckpt_dir / f"step-{step}", state, files=adapter)
    for old in sorted(ckpt_dir.glob("step-*"), key=lambda p: int(p.name[5:]))[:-2]:
        shutil.rmtree(old, ignore_errors=True)


def restore_run_checkpoint(ctx: RunContext, path: Path, optimizer: AdapterOptimizer) -> int:
    """Load a run checkpoint into the model, the optimizer and this process's random
    streams; returns its step. A corrupted or mismatched one is a CheckpointError with
    what to do."""
    try:
        state = load_checkpoint(path)
        verify_sha256(path / WEIGHTS_FILE, read_adapter_config(path).get(SHA256_KEY))
    except CheckpointError as err:
        raise CheckpointError(f"{err}; {_fallback(path)}") from err
    try:
        load_adapter_weights(ctx.setup.model, path)
        optimizer.load_state_dict(state["optimizer"])
    except (KeyError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path} does not match this run: {err}") from err
    streams = state.get("rng") or [  # checkpoints of 0.1 kept one process's state
        {"cpu": state["rng_cpu"], "cuda": state.get("rng_cuda", [])}
    ]
    if len(streams) != ctx.acc.num_processes:
        raise CheckpointError(
            f"checkpoint {path} was written by {len(streams)} process(es), this run has "
            f"{ctx.acc.num_processes}; resume with the same number of processes"
        )
    own = streams[ctx.acc.process_index]
    torch.set_rng_state(own["cpu"])
    if torch.cuda.is_available() and own["cuda"]:
        torch.cuda.set_rng_state_all(own["cuda"])
    return int(state["step"])


def _fallback(bad: Path) -> str:
    """What to do about a corrupted or incomplete latest checkpoint (two are kept)."""
    earlier = sorted(
        (p for p in bad.parent.glob("step-*") if p != bad and p.name[5:].isdigit()),
        key=lambda p: int(p.name[5:]),
    )
    if earlier:
        return f"delete {bad} and run with --resume again to continue from {earlier[-1].name}"
    return f"no earlier checkpoint is kept: delete {bad.parent} and train without --resume"
