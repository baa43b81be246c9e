import json

import pytest
import torch
from peft import PeftModel
from tiny_models import randomize_adapters, tiny_bert, tiny_gpt2, tiny_llama

from blob_lora import (
    CheckpointError,
    export_peft,
    from_peft,
    get_blob_model,
    load_adapter,
    save_adapter,
)
from blob_lora.adapter_io import WEIGHTS_FILE


@pytest.mark.parametrize("kind", ["lora", "blob", "bbb"])
def test_save_load_round_trip_is_exact(tmp_path, kind, input_ids):
    blob = get_blob_model(tiny_llama(), kind=kind, target_modules=["q_proj", "v_proj", "lm_head"])
    randomize_adapters(blob)
    save_adapter(blob, tmp_path / "adapter")
    loaded = load_adapter(tiny_llama(), tmp_path / "adapter")
    for (n1, p1), (n2, p2) in zip(
        blob.named_trainable_parameters(), loaded.named_trainable_parameters(), strict=True
    ):
        assert n1 == n2 and torch.equal(p1, p2)
    assert loaded.adapter_config == blob.adapter_config
    with torch.no_grad():
        assert torch.equal(blob(input_ids=input_ids).logits, loaded(input_ids=input_ids).logits)
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == [
        "adapter_model.safetensors",
        "blob_adapter.json",
    ]


@pytest.mark.parametrize(
    "factory,targets,save",
    [
        (tiny_llama, ["q_proj", "v_proj", "lm_head"], []),
        (tiny_gpt2, ["c_attn"], []),
        (tiny_bert, ["query", "value"], ["classifier"]),
    ],
)
def test_peft_export_reproduces_mean_outputs(tmp_path, factory, targets, save, input_ids):
    blob = get_blob_model(factory(), kind="blob", target_modules=targets, modules_to_save=save)
    randomize_adapters(blob)
    blob.eval()
    export_peft(blob, tmp_path / "peft")
    peft = PeftModel.from_pretrained(factory(), tmp_path / "peft").eval()
    with torch.no_grad():
        ours = blob(input_ids=input_ids).logits
        theirs = peft(input_ids=input_ids).logits
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert (
        json.loads((tmp_path / "peft" / "adapter_config.json").read_text())["peft_type"] == "LORA"
    )


def test_import_peft_lora_as_starting_mean(tmp_path, input_ids):
    src = get_blob_model(
        tiny_llama(), kind="lora", r=4, alpha=8, target_modules=["q_proj", "v_proj"]
    )
    randomize_adapters(src)
    src.eval()
    export_peft(src, tmp_path / "peft")
    blob = from_peft(tiny_llama(), tmp_path / "peft", kind="blob").eval()
    assert blob.adapter_config.r == 4 and blob.adapter_config.alpha == 8
    assert all(layer.is_bayesian for layer in blob.adapters().values())
    with torch.no_grad():
        assert torch.allclose(
            blob(input_ids=input_ids).logits, src(input_ids=input_ids).logits, atol=1e-6
        )


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    blob = get_blob_model(tiny_llama(), r=4, target_modules=["q_proj"])
    save_adapter(blob, tmp_path / "a")
    meta_path = tmp_path / "a" / "blob_adapter.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["r"] = 2
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shape"):
        load_adapter(tiny_llama(), tmp_path / "a")
    meta["config"]["r"] = 4
    meta["config"]["target_modules"] = ["q_proj", "v_proj"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="missing"):
        load_adapter(tiny_llama(), tmp_path / "a")


def test_corrupted_checkpoint_is_a_clear_error(tmp_path):
    blob = get_blob_model(tiny_llama(), target_modules=["q_proj"])
    save_adapter(blob, tmp_path / "a")
    weights = tmp_path / "a" / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_adapter(tiny_llama(), tmp_path / "a")
    (tmp_path / "a" / "blob_adapter.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_adapter(tiny_llama(), tmp_path / "a")
    with pytest.raises(CheckpointError, match="not a blob-lora adapter"):
        load_adapter(tiny_llama(), tmp_path / "missing")


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    blob = get_blob_model(tiny_llama(), target_modules=["q_proj"])
    save_adapter(blob, tmp_path / "a")
    before = (tmp_path / "a" / WEIGHTS_FILE).read_bytes()
    import blob_lora.adapter_io as io

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(io, "save_file", boom)
    randomize_adapters(blob)
    with pytest.raises(OSError):
        save_adapter(blob, tmp_path / "a")
    assert (tmp_path / "a" / WEIGHTS_FILE).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_a_flipped_byte_in_a_saved_tensor_file_is_named_on_load(tmp_path):
    import os

    from blob_lora.adapter_io import CONFIG_FILE, WEIGHTS_FILE, load_adapter_weights
    from blob_lora.run.checkpoint import STATE_TENSORS, load_checkpoint, save_checkpoint

    blob = get_blob_model(tiny_llama(), kind="blob", target_modules=["q_proj"])
    save_adapter(blob, tmp_path / "adapter")
    assert oct(os.stat(tmp_path / "adapter").st_mode & 0o777) != oct(0o700)  # not owner-only
    weights = tmp_path / "adapter" / WEIGHTS_FILE
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(weights).st_mode & 0o777 == 0o666 & ~umask  # as a plain new file
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # in the tensor data, past the header: still a valid safetensors file
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{WEIGHTS_FILE} is corrupted: its sha256"):
        load_adapter_weights(blob, tmp_path / "adapter")

    save_checkpoint(tmp_path / "ckpt", {"step": 3, "t": torch.ones(4)}, files={})
    assert load_checkpoint(tmp_path / "ckpt")["step"] == 3
    state = tmp_path / "ckpt" / STATE_TENSORS
    data = bytearray(state.read_bytes())
    data[-1] ^= 0x40
    state.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{STATE_TENSORS} is corrupted"):
        load_checkpoint(tmp_path / "ckpt")
    # an adapter saved before digests existed still loads: no digest, no check
    meta = json.loads((tmp_path / "adapter" / CONFIG_FILE).read_text())
    meta.pop("files_sha256")
    (tmp_path / "adapter" / CONFIG_FILE).write_text(json.dumps(meta))
    load_adapter_weights(blob, tmp_path / "adapter")
