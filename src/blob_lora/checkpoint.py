"""Training checkpoints as safetensors + JSON: resumable, atomic, no pickles.

Optimizer and scheduler states are nested dicts of tensors and plain values; tensors go
to safetensors under generated keys, the rest to JSON with placeholders.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from .adapter_io import SHA256_KEY, verify_sha256, write_dir_atomically
from .errors import CheckpointError

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
