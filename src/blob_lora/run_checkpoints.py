"""Checkpoints of a training run: adapter, optimizer and every process's random streams."""

from __future__ import annotations

import shutil
from pathlib import Path

import accelerate.utils
import torch

from .adapter_io import (
    CONFIG_FILE,
    SHA256_KEY,
    WEIGHTS_FILE,
    load_adapter_weights,
    read_adapter_config,
    verify_sha256,
)
from .checkpoint import load_checkpoint, save_checkpoint
from .errors import CheckpointError
from .optim import AdapterOptimizer


class CheckpointMixin:
    """Runner's checkpoints: save one, restore the latest on resume."""

    def _save_checkpoint(self, ckpt_dir: Path, step: int, optimizer: AdapterOptimizer) -> None:
        own = {
            "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        rng = [own]
        if self.acc.num_processes > 1:  # every process's streams, so a resume continues each
            rng = accelerate.utils.gather_object(rng)
        blob = self.setup.model
        # gathered on every process (collectives under sharding=fsdp), written by one
        optimizer_state, adapter_state = optimizer.state_dict(), blob.adapter_state_dict()
        if not self.acc.is_main_process:
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

    def _restore(self, path: Path, optimizer: AdapterOptimizer) -> int:
        try:
            state = load_checkpoint(path)
            verify_sha256(path / WEIGHTS_FILE, read_adapter_config(path).get(SHA256_KEY))
        except CheckpointError as err:
            raise CheckpointError(f"{err}; {_fallback(path)}") from err
        try:
            load_adapter_weights(self.setup.model, path)
            optimizer.load_state_dict(state["optimizer"])
        except (KeyError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"checkpoint {path} does not match this run: {err}") from err
        streams = state.get("rng") or [  # checkpoints of 0.1 kept one process's state
            {"cpu": state["rng_cpu"], "cuda": state.get("rng_cuda", [])}
        ]
        if len(streams) != self.acc.num_processes:
            raise CheckpointError(
                f"checkpoint {path} was written by {len(streams)} process(es), this run has "
                f"{self.acc.num_processes}; resume with the same number of processes"
            )
        own = streams[self.acc.process_index]
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
