import pytest
import torch
from tiny_models import randomize_adapters, tiny_llama

from blob_lora import AdapterOptimizer, CheckpointError, OptimConfig, get_blob_model
from blob_lora.run.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


def test_optimizer_state_round_trips_through_safetensors_and_json(tmp_path):
    blob = get_blob_model(tiny_llama(), target_modules=["q_proj"])
    randomize_adapters(blob)
    opt = AdapterOptimizer(blob, OptimConfig(total_steps=5))
    ids = torch.randint(3, 64, (2, 5))
    blob.train()
    blob(input_ids=ids, labels=ids).loss.backward()
    opt.step(0.5)
    state = {"step": 1, "optimizer": opt.state_dict(), "rng": torch.get_rng_state(), "x": [1, 2.5]}
    save_checkpoint(tmp_path / "step-1", state)
    back = load_checkpoint(tmp_path / "step-1")
    assert back["step"] == 1 and back["x"] == [1, 2.5]
    assert torch.equal(back["rng"], state["rng"])
    adam = state["optimizer"]["optimizers"][0]
    adam_back = back["optimizer"]["optimizers"][0]
    for k, v in adam["state"].items():
        for name, t in v.items():
            assert torch.equal(adam_back["state"][k][name], t)
    assert adam_back["param_groups"] == adam["param_groups"]
    opt.load_state_dict(back["optimizer"])  # loads into a live optimizer
    assert latest_checkpoint(tmp_path) == tmp_path / "step-1"


def test_corrupted_checkpoint_error(tmp_path):
    save_checkpoint(tmp_path / "step-3", {"step": 3, "t": torch.ones(3)})
    f = tmp_path / "step-3" / "trainer_state.safetensors"
    f.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(tmp_path / "step-3")
    with pytest.raises(CheckpointError, match="incomplete"):
        load_checkpoint(tmp_path / "step-9")


def test_rejects_objects_that_would_need_pickle(tmp_path):
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "c", {"f": object()})
    assert not (tmp_path / "c").exists()
