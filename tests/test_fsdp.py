"""BLoB adapters over a base sharded by torch FSDP2 (`fully_shard`), 2 CPU processes (gloo).

What this CPU can test of issue 16's FSDP item: the adapter layers and the KL under
sharded parameters (DTensor). blob-lora's runner does not set FSDP up: Accelerate 1.15
turns `--use_fsdp` into FSDP only for GPU-type processes; with CPU processes it gives DDP
(`Accelerator(cpu=True)`) or independent processes. See README, "Scaling up".
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from tiny_models import tiny_llama

from blob_lora import get_blob_model

fsdp = pytest.importorskip("torch.distributed.fsdp")
WORLD = 2


def _model():
    torch.manual_seed(0)
    blob = get_blob_model(
        tiny_llama(), kind="blob", r=4, alpha=8, target_modules=["q_proj", "v_proj"]
    )
    with torch.no_grad():
        for layer in blob.adapters().values():
            layer.lora_B.normal_(0, 0.1)
    return blob


def _ids():
    return torch.randint(3, 64, (2 * WORLD, 7), generator=torch.Generator().manual_seed(0))


def _worker(rank: int, init: str, out: str) -> None:
    from torch.distributed.tensor import DTensor

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    try:
        blob = _model()
        for layer in blob.model.model.layers:
            fsdp.fully_shard(layer)
        fsdp.fully_shard(blob)
        blob.train()
        ids = _ids()[rank::WORLD]  # equal lengths: the mean of the ranks' means is the mean
        with blob.sampling("mean"):
            blob(input_ids=ids, labels=ids).loss.backward()
        kl = blob.kl()
        full = {
            n: (p.grad.full_tensor() if isinstance(p.grad, DTensor) else p.grad)
            for n, p in blob.named_trainable_parameters()
            if p.grad is not None
        }
        kl = kl.full_tensor() if isinstance(kl, DTensor) else kl
        sharded = all(isinstance(p, DTensor) for p in blob.parameters())
        if rank == 0:
            flags = {"kl": kl.reshape(1), "sharded": torch.tensor([float(sharded)])}
            save_file({**{f"grad.{n}": g.contiguous() for n, g in full.items()}, **flags}, out)
    finally:
        dist.destroy_process_group()


def test_blob_adapters_over_an_fsdp2_sharded_base_match_one_process(tmp_path):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    out = str(tmp_path / "rank0.safetensors")
    init = f"file://{tmp_path / 'store'}"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(init, out), nprocs=WORLD, join=True)
    saved = load_file(out)
    got = {
        "grads": {k[len("grad.") :]: v for k, v in saved.items() if k.startswith("grad.")},
        "kl": saved["kl"][0],
        "sharded": bool(saved["sharded"][0]),
    }
    ref = copy.deepcopy(_model())
    ref.train()
    with ref.sampling("mean"):
        ids = _ids()
        ref(input_ids=ids, labels=ids).loss.backward()
    want = {n: p.grad for n, p in ref.named_trainable_parameters() if p.grad is not None}
    assert got["sharded"] and set(got["grads"]) == set(want)
    for name, grad in want.items():
        assert torch.allclose(got["grads"][name], grad, rtol=1e-5, atol=1e-7), name
    assert torch.allclose(got["kl"], ref.kl(), rtol=1e-9)
