"""TFB: the SVD reparametrization, the std it sets, and the variance search."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from tiny_models import randomize_adapters, tiny_bert, tiny_llama

from blob_lora import export_peft, from_peft, get_blob_model, load_adapter, save_adapter
from blob_lora.errors import ConfigError
from blob_lora.layers import BLoBLayer
from blob_lora.methods.base import PostTrainContext
from blob_lora.methods.tfb import METHOD, bayesianize, set_beta
from blob_lora.tasks.lm_scoring import last_position_logits

ROWS = torch.tensor([10, 11, 12])


def _llama_lora():
    torch.manual_seed(0)
    blob = get_blob_model(tiny_llama(), kind="lora", target_modules=["q_proj", "v_proj", "lm_head"])
    randomize_adapters(blob, scale=0.3)
    return blob.eval()


def _ids(n: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    ids = torch.randint(3, 64, (n, 6), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _choice_logits(blob, batch):
    return last_position_logits(blob.model, batch["input_ids"], batch["attention_mask"], ROWS)


def test_reparametrization_keeps_the_mean_and_sets_std_beta_over_singular_value():
    blob = _llama_lora()
    batch = _ids()
    with torch.no_grad():
        before = _choice_logits(blob, batch)
        full_before = blob(**batch).logits
    old = {name: (layer, *layer.mean_weights()) for name, layer in blob.adapters().items()}
    new, inv_d = bayesianize(blob)
    set_beta(new, inv_d, 0.05)
    assert new.model is blob.model and new.adapter_config.kind == "blob"
    for name, layer in new.adapters().items():
        old_layer, a, b = old[name]
        assert isinstance(layer, BLoBLayer)
        assert layer.base is old_layer.base  # shared, not copied
        torch.testing.assert_close(layer.lora_B @ layer.lora_A, b @ a, rtol=1e-5, atol=1e-6)
        d = torch.linalg.svdvals(b.double()).float()
        expected = (0.05 / d)[:, None].expand_as(layer.std_A)
        torch.testing.assert_close(layer.std_A, expected, rtol=1e-5, atol=0)
        # columns of B' are orthogonal with norms d: B' = U diag(d)
        gram = layer.lora_B.T @ layer.lora_B
        torch.testing.assert_close(gram, torch.diag(d**2), rtol=1e-4, atol=1e-5)
    with torch.no_grad(), new.sampling("mean"):
        torch.testing.assert_close(_choice_logits(new, batch), before, rtol=0, atol=1e-5)
        torch.testing.assert_close(new(**batch).logits, full_before, rtol=0, atol=1e-5)
    with torch.no_grad(), new.sampling("sequence"):
        assert (new(**batch).logits - full_before).abs().max() > 1e-3  # A' really is random


def test_zero_singular_values_get_no_noise():
    torch.manual_seed(0)
    blob = get_blob_model(tiny_llama(), kind="lora", target_modules=["q_proj"])  # B = 0
    new, inv_d = bayesianize(blob)
    set_beta(new, inv_d, 0.1)
    for layer in new.adapters().values():
        assert torch.count_nonzero(layer.std_A) == 0
    with torch.no_grad(), new.sampling("sequence"):
        assert torch.isfinite(new(**_ids()).logits).all()


def _bert_context(blob, n_batches: int = 2):
    gen = torch.Generator().manual_seed(0)
    batches = [
        {
            "input_ids": torch.randint(3, 64, (16, 6), generator=gen),
            "attention_mask": torch.ones(16, 6, dtype=torch.long),
            "labels": torch.randint(0, 3, (16,), generator=gen),
        }
        for _ in range(n_batches)
    ]

    def class_logits(b):
        return blob.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits

    return PostTrainContext(
        train_batches=lambda: iter(batches),
        anchor_batches=lambda: iter(batches),
        class_logits=class_logits,
        n_train=16 * n_batches,
        seed=3,
    )


@pytest.mark.parametrize(("metric", "tolerance"), [("nll", 0.01), ("acc", 0.05)])
def test_search_finds_the_largest_beta_within_tolerance(metric, tolerance):
    torch.manual_seed(0)
    blob = get_blob_model(tiny_bert(), kind="lora", target_modules=["query", "value", "classifier"])
    randomize_adapters(blob, scale=1.0)
    context = _bert_context(blob)
    method = replace(METHOD, metric=metric, tolerance=tolerance, max_iters=7)
    model = method.post_train(blob, context)
    beta = model.method_state.beta
    assert method.beta_min < beta < method.beta_max

    model.eval()
    batches = list(context.anchor_batches())
    anchor_labels, reference = method.reference(model, batches, context.class_logits)
    inv_d = {n: layer.std_A[:, 0].detach() / beta for n, layer in model.adapters().items()}

    def degradation(b: float) -> float:
        set_beta(model, inv_d, b)
        score = method.score(model, batches, context.class_logits, anchor_labels, context.seed)
        return method.degradation(reference, score)

    assert degradation(beta) <= tolerance
    assert degradation(2 * beta) > tolerance or 2 * beta >= method.beta_max


def test_upper_bound_is_returned_when_nothing_degrades():
    torch.manual_seed(0)
    blob = get_blob_model(tiny_bert(), kind="lora", target_modules=["query"])
    randomize_adapters(blob, scale=0.3)
    context = _bert_context(blob, n_batches=1)
    method = replace(METHOD, metric="acc", tolerance=1.0, beta_max=0.5)
    assert method.post_train(blob, context).method_state.beta == 0.5


def test_works_on_an_imported_peft_adapter_and_round_trips(tmp_path):
    src = _llama_lora()
    export_peft(src, tmp_path / "peft")
    blob = from_peft(tiny_llama(), tmp_path / "peft", kind="lora").eval()
    anchor = [dict(_ids(8, seed=1), labels=torch.zeros(8, dtype=torch.long))]
    context = PostTrainContext(
        train_batches=lambda: iter(anchor),
        anchor_batches=lambda: iter(anchor),
        class_logits=lambda b: _choice_logits(blob, b),
        n_train=8,
    )
    batch = _ids()
    with torch.no_grad():
        before = _choice_logits(blob, batch)
    model = replace(METHOD, max_iters=4, search_samples=3).post_train(blob, context)
    assert model.adapter_config.kind == "blob"
    with torch.no_grad():
        probs, samples = METHOD.predict(model, lambda: _choice_logits(model, batch), 4)
        mean_probs, _ = METHOD.predict(model, lambda: _choice_logits(model, batch), 0)
    assert samples.shape == (4, 4, 3)
    torch.testing.assert_close(mean_probs, torch.softmax(before, -1), rtol=0, atol=1e-5)

    save_adapter(model, tmp_path / "tfb")  # a TFB model is an ordinary BLoB adapter
    again = load_adapter(tiny_llama(), tmp_path / "tfb").eval()
    for name, layer in again.adapters().items():
        torch.testing.assert_close(layer.std_A, model.adapters()[name].std_A)
    with torch.no_grad(), again.sampling("mean"):
        torch.testing.assert_close(_choice_logits(again, batch), before, rtol=0, atol=1e-5)


def test_bad_settings_fail_early():
    with pytest.raises(ConfigError, match="metric"):
        replace(METHOD, metric="ece")
    with pytest.raises(ConfigError, match="beta_min"):
        replace(METHOD, beta_min=1.0, beta_max=0.1)


def test_tall_output_layer_b_never_builds_a_square_u(monkeypatch):
    """A (vocab x r) B must get a thin SVD: a full U is vocab x vocab (549 GB for Gemma)."""
    seen = []
    real_svd = torch.linalg.svd

    def spy(b, full_matrices=True):
        out = real_svd(b, full_matrices=full_matrices)
        seen.append((tuple(b.shape), tuple(out[0].shape), tuple(out[2].shape)))
        return out

    monkeypatch.setattr(torch.linalg, "svd", spy)
    blob = _llama_lora()
    bayesianize(blob)
    assert seen
    for (out, r), u_shape, vh_shape in seen:
        assert vh_shape == (r, r)
        assert u_shape == ((out, r) if out >= r else (out, out))
    assert any(out >= 8 * r for (out, r), _, _ in seen)  # lm_head's tall B was among them
