import torch
from tiny_models import randomize_adapters, tiny_bert

from blob_lora import get_blob_model, predictive_probs


def test_n0_is_mean_and_n_averages_sampled_probabilities():
    blob = get_blob_model(tiny_bert(), target_modules=["query", "value", "classifier"])
    randomize_adapters(blob, scale=0.3)
    ids = torch.randint(3, 64, (4, 6))

    def logits():
        return blob(input_ids=ids).logits

    p0a = predictive_probs(blob, logits, 0)
    p0b = predictive_probs(blob, logits, 0)
    assert torch.equal(p0a, p0b)
    torch.manual_seed(0)
    p10, samples = predictive_probs(blob, logits, 10, return_samples=True)
    assert samples.shape == (10, 4, 3)
    assert torch.allclose(p10, samples.mean(0))
    assert torch.allclose(p10.sum(-1), torch.ones(4))
    # the samples really differ and are not the mean's
    assert samples.std(0).max() > 1e-4
    torch.manual_seed(0)
    with blob.sampling("sequence"):  # the default prediction noise
        first = torch.softmax(logits(), -1)
    assert torch.allclose(first, samples[0])


def test_prediction_noise_can_differ_from_the_training_noise():
    """`predict_sample_mode` picks the noise of the N samples (default: one weight sample
    per input, whatever the training noise); unset (None), training's is used.
    Under each, the draws are those of that noise's own sampling context (same seed)."""
    import pytest

    from blob_lora.config import AdapterConfig
    from blob_lora.errors import ConfigError

    blob = get_blob_model(
        tiny_bert(), target_modules=["query", "value", "classifier"], sample_mode="flipout"
    )
    randomize_adapters(blob, scale=0.3)
    ids = torch.randint(3, 64, (4, 6))

    def logits():
        return blob(input_ids=ids).logits

    def draws():
        torch.manual_seed(1)
        return predictive_probs(blob, logits, 3, return_samples=True)[1]

    def under(mode):
        torch.manual_seed(1)
        with blob.sampling(mode):
            return torch.stack([torch.softmax(logits(), -1) for _ in range(3)])

    assert blob.adapter_config.predict_sample_mode == "sequence"  # the product default
    seq = draws()
    assert torch.allclose(seq, under("sequence"))
    assert not torch.allclose(seq, under("flipout"))  # the setting really changed the noise
    blob.adapter_config.predict_sample_mode = None
    assert torch.allclose(draws(), under("flipout"))  # unset: the training noise
    assert blob.adapter_config.sample_mode == "flipout"  # training's is left as it was
    with pytest.raises(
        ConfigError,
        match="predict_sample_mode: Input should be 'sequence', 'flipout', 'head' or 'linear'",
    ):
        AdapterConfig(predict_sample_mode="token")
