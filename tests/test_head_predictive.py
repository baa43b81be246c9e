"""predict_sample_mode=head: one forward pass, the trunk at its mean, the head adapter's
exact Gaussian logits; checked on a tiny causal LM against sampling the head's A alone."""

import pytest
import torch
from tiny_models import randomize_adapters, tiny_bert, tiny_llama

from blob_lora import ConfigError, get_blob_model
from blob_lora.config import AdapterConfig
from blob_lora.predictive import head_layer, predictive_probs
from blob_lora.tasks.lm_scoring import last_position_logits


def _model(targets=("q_proj", "lm_head")):
    blob = get_blob_model(tiny_llama(), kind="blob", target_modules=list(targets))
    randomize_adapters(blob)
    with torch.no_grad():
        for layer in blob.adapters().values():
            layer.lora_A_g.uniform_(0.3, 0.6)  # a posterior that reaches the logits
    return blob.eval()


def test_head_mode_is_the_last_layer_monte_carlo_limit():
    blob = _model()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 64, (3, 7), generator=gen)
    mask = torch.ones_like(ids)
    rows = torch.tensor([10, 20, 30])

    def logits():
        return last_position_logits(blob.model, ids, mask, rows)

    blob.adapter_config.predict_sample_mode = "head"
    torch.manual_seed(1)
    probs, draws = predictive_probs(blob, logits, n_samples=10, return_samples=True)
    assert probs.shape == (3, 3) and draws.shape[1:] == (3, 3)
    # brute force: the trunk's adapters at their mean, only the head's A sampled per input
    head = head_layer(blob)
    trunk = [layer for layer in blob.adapters().values() if layer is not head]
    passes = 3000
    with torch.no_grad(), blob.sampling("mean"):
        head.noise.mode = "sequence"
        torch.manual_seed(2)
        sampled = torch.stack([torch.softmax(logits().double(), -1) for _ in range(passes)])
        head.noise.mode = "mean"
    assert all(layer.noise.mode == "auto" for layer in trunk)  # restored after the context
    se = sampled.std(0) / passes**0.5
    assert ((probs.double() - sampled.mean(0)).abs() <= 5 * se + 2e-3).all()
    # the samples disagree: the head's posterior reaches the predictions
    assert float(sampled.std(0).max()) > 0.02
    # and N=0 is the plain pass at the mean
    at_mean = predictive_probs(blob, logits, n_samples=0)
    with torch.no_grad(), blob.sampling("mean"):
        torch.testing.assert_close(at_mean, torch.softmax(logits(), -1))


def test_head_mode_needs_a_bayesian_adapter_on_the_output_layer():
    blob = _model(targets=("q_proj", "v_proj"))
    blob.adapter_config.predict_sample_mode = "head"
    ids = torch.randint(3, 64, (2, 5))
    with pytest.raises(ValueError, match="needs a Bayesian \\(blob\\) adapter on the output"):
        predictive_probs(
            blob,
            lambda: last_position_logits(
                blob.model, ids, torch.ones_like(ids), torch.tensor([3, 4])
            ),
            10,
        )
    with pytest.raises(ConfigError, match="needs a Gaussian A and a point-estimate B"):
        AdapterConfig(kind="bbb", predict_sample_mode="head")


def test_head_mode_on_a_classifier_head():
    blob = get_blob_model(
        tiny_bert(num_labels=3), kind="blob", target_modules=["query", "classifier"]
    )
    randomize_adapters(blob)
    blob.eval()
    blob.adapter_config.predict_sample_mode = "head"
    ids = torch.randint(3, 64, (2, 6))
    probs = predictive_probs(blob, lambda: blob.model(input_ids=ids).logits, n_samples=5)
    assert head_layer(blob) is blob.model.classifier
    assert probs.shape == (2, 3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    # a head with no posterior noise predicts exactly its mean
    with torch.no_grad():
        blob.model.classifier.lora_A_g.zero_()
        mean = torch.softmax(blob.model(input_ids=ids).logits, -1)
    probs = predictive_probs(blob, lambda: blob.model(input_ids=ids).logits, n_samples=5)
    torch.testing.assert_close(probs, mean, atol=1e-6, rtol=0)
