"""Sharded training (`sharding=fsdp`): torch's FSDP2 (`fully_shard`) over the processes that
`accelerate launch` started, for a base model larger than one device.

Every repeated block of the model (its largest ModuleList) and then the body holding them
(the root's child: `model.model` of a causal LM, `bert` of an encoder) are sharded,
adapters included: outside a forward pass their parameters are DTensors holding this
process's shard. The output head stays whole on every process (the answer-row scoring
calls the body and the head's rows directly, past any root forward), and its gradients
are averaged here (`average_replicated_grads`), as DDP would. What needs whole tensors -
the logged KL, the sigma statistics, the saved adapter and optimizer state - gathers them
here, and every process must call those functions together (they are collectives).
Accelerate's own FSDP plugin is not used: it sets FSDP up only for GPU processes, so it
could not be tested on CPU.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def is_sharded(t: Any) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a DTensor (a collective); a plain tensor as it is."""
    return t.full_tensor() if is_sharded(t) else t


def blocks(model: nn.Module) -> nn.ModuleList:
    """The model's repeated blocks: its largest ModuleList of modules with parameters."""
    lists = [
        m for m in model.modules()
        if isinstance(m, nn.ModuleList) and len(m) and any(True for _ in m[0].parameters())
    ]  # fmt: skip
    if not lists:
        raise ValueError(f"{type(model).__name__} has no list of blocks to shard")
    return max(lists, key=lambda m: sum(p.numel() for p in m.parameters()))


def body_of(model: nn.Module, layers: nn.ModuleList) -> nn.Module:
    """The root's child that holds the blocks (the root itself when they hang off it)."""
    for child in model.children():
        if child is layers or any(m is layers for m in child.modules()):
            return child
    return model


def shard_model(model: nn.Module) -> int:
    """Shard each block, then the body holding them; returns the number of blocks."""
    from torch.distributed.fsdp import fully_shard

    layers = blocks(model)
    for block in layers:
        fully_shard(block)
    fully_shard(body_of(model, layers))
    return len(layers)


def average_replicated_grads(model: nn.Module) -> None:
    """Average over the processes the gradients of trainable parameters FSDP does not
    hold (the head's), which each process computed on its own batch."""
    import torch.distributed as dist

    world = dist.get_world_size()
    for p in model.parameters():
        if p.requires_grad and p.grad is not None and not is_sharded(p):
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def load_into(param: nn.Parameter, value: torch.Tensor) -> None:
    """Copy a whole tensor into a parameter, keeping only this process's shard."""
    value = value.to(device=param.device, dtype=param.dtype)
    if is_sharded(param):
        from torch.distributed.tensor import distribute_tensor

        value = distribute_tensor(value, param.device_mesh, param.placements)
    with torch.no_grad():
        param.copy_(value)


def full_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """`optimizer.state_dict()` with whole tensors in place of shards (every process calls
    it), so a checkpoint has the layout of an unsharded run."""
    return _to_plain(optimizer.state_dict())


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a whole-tensor optimizer state, keeping this process's shard of each tensor
    shaped like its (sharded) parameter."""
    from torch.distributed.tensor import distribute_tensor

    params = [p for group in optimizer.param_groups for p in group["params"]]
    local = {"param_groups": state["param_groups"], "state": {}}
    for index, values in state["state"].items():
        param = params[int(index)]
        local["state"][index] = {
            key: distribute_tensor(v.to(param.device), param.device_mesh, param.placements)
            if is_sharded(param) and torch.is_tensor(v) and v.shape == param.shape
            else v
            for key, v in values.items()
        }
    optimizer.load_state_dict(local)


def _to_plain(obj: Any) -> Any:
    """Nested state with DTensors replaced by whole CPU tensors."""
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return full(obj).detach().cpu()
    return obj
