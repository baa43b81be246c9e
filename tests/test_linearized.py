"""predict_sample_mode=linear: the logits' Gaussian under the linearized posterior, checked
against finite differences of the logits in A, against sampling A when the noise is small,
and against the head's exact Gaussian when the head is the only Bayesian layer."""

import pytest
import torch
from tiny_models import randomize_adapters, tiny_bert, tiny_llama

from blob_lora import ConfigError, get_blob_model
from blob_lora.config import AdapterConfig
from blob_lora.predictive import head_layer, predictive_probs, weight_draws
from blob_lora.predictive.linearized import (
    bayesian_layers,
    linearized_gaussian,
    variance_by_layer,
)
from blob_lora.tasks.lm_scoring import last_position_logits

ROWS = torch.tensor([10, 20, 30, 40])


def _llama(targets=("q_proj", "v_proj", "lm_head"), std=(0.2, 0.4)):
    blob = get_blob_model(tiny_llama(), kind="blob", target_modules=list(targets), r=2)
    randomize_adapters(blob, scale=0.3)
    with torch.no_grad():
        for layer in blob.adapters().values():
            layer.lora_A_g.uniform_(*std)
    return blob.double().eval()


def _batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 64, (3, 6), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, :2] = 0  # a left-padded row: its pads must add nothing
    return ids, mask


def _contrasts(logits):
    return logits[:, 1:] - logits[:, :1]


def _finite_difference_covariance(blob, logits, step=1e-2, layers=None):
    """J diag(Omega^2) J^T per example, J the contrasts' derivative in every entry of every
    A by the 4-point stencil: the rotary embedding runs in float32 even in a float64 model,
    so a small step drowns in rounding, and this stencil's error is of order step^4."""
    expected = None
    with torch.no_grad(), blob.sampling("mean"):
        for layer in layers or bayesian_layers(blob):
            flat_a, flat_std = layer.lora_A.view(-1), layer.std_A.reshape(-1)
            for p in range(flat_a.numel()):
                keep = flat_a[p].item()
                at = {}
                for k in (-2, -1, 1, 2):
                    flat_a[p] = keep + k * step
                    at[k] = _contrasts(logits())
                flat_a[p] = keep
                jac = (8 * (at[1] - at[-1]) - (at[2] - at[-2])) / (12 * step)  # (B, C-1)
                term = flat_std[p] ** 2 * jac[:, :, None] * jac[:, None, :]
                expected = term if expected is None else expected + term
    return expected


def test_covariance_matches_finite_differences_of_the_logits():
    blob = _llama()
    ids, mask = _batch()

    def logits():
        return last_position_logits(blob.model, ids, mask, ROWS)

    mean, cov = linearized_gaussian(blob, logits)
    assert mean.shape == (3, 4) and cov.shape == (3, 4, 4)
    assert torch.equal(cov[:, 0], torch.zeros(3, 4))  # relative to the first class
    with torch.no_grad(), blob.sampling("mean"):
        torch.testing.assert_close(mean, logits())
    expected = _finite_difference_covariance(blob, logits)
    torch.testing.assert_close(cov[:, 1:, 1:], expected, rtol=1e-3, atol=1e-6)
    assert float(expected.diagonal(dim1=1, dim2=2).min()) > 1e-3  # the noise reaches them
    # each layer's part: they sum to the variance, and one layer's part is what finite
    # differences in that layer's A alone give
    parts = variance_by_layer(blob, logits)
    assert set(parts) == set(blob.adapters())
    total = sum(parts.values())
    torch.testing.assert_close(total, cov[:, 1:, 1:].diagonal(dim1=1, dim2=2))
    layer = blob.adapters()["model.layers.1.self_attn.q_proj"]
    alone = _finite_difference_covariance(blob, logits, layers=[layer])
    torch.testing.assert_close(
        parts["model.layers.1.self_attn.q_proj"],
        alone.diagonal(dim1=1, dim2=2),
        rtol=1e-3,
        atol=1e-6,
    )


def test_small_noise_matches_sampling_one_weight_draw_per_example():
    blob = _llama(std=(0.03, 0.06))
    ids, mask = _batch(1)

    def logits():
        return last_position_logits(blob.model, ids, mask, ROWS)

    _, cov = linearized_gaussian(blob, logits)
    draws = 3000
    torch.manual_seed(0)
    with torch.no_grad(), blob.sampling("sequence"):
        sampled = torch.stack([_contrasts(logits()) for _ in range(draws)])
    centred = sampled - sampled.mean(0)
    empirical = torch.einsum("sbk,sbj->bkj", centred, centred) / (draws - 1)
    var_lin = cov[:, 1:, 1:].diagonal(dim1=1, dim2=2)
    var_mc = empirical.diagonal(dim1=1, dim2=2)
    # the variance's Monte Carlo error is sqrt(2 / draws) = 2.6%; linearization adds little
    assert ((var_mc / var_lin - 1).abs() < 0.12).all(), (var_mc, var_lin)
    corr = empirical / (var_mc[:, :, None] * var_mc[:, None, :]).sqrt()
    corr_lin = cov[:, 1:, 1:] / (var_lin[:, :, None] * var_lin[:, None, :]).sqrt()
    assert (corr - corr_lin).abs().max() < 0.1


def test_a_bayesian_head_alone_gives_the_heads_exact_gaussian():
    blob = _llama(targets=("lm_head",))
    ids, mask = _batch(2)
    head = head_layer(blob)
    seen = []
    head.delta_observers.append(lambda x, rows, out: seen.append(x.detach()))

    def logits():
        return last_position_logits(blob.model, ids, mask, ROWS)

    mean, cov = linearized_gaussian(blob, logits)
    head_mean, head_cov = head.output_gaussian(seen[-1], ROWS)
    contrast = torch.cat([-torch.ones(3, 1), torch.eye(3)], dim=1).double()  # c_k = f_k - f_0
    torch.testing.assert_close(mean, head_mean)
    torch.testing.assert_close(cov[:, 1:, 1:], contrast @ head_cov @ contrast.T)


def test_linear_mode_predicts_leaves_the_model_as_it_was_and_masks_absent_choices():
    blob = _llama()
    ids, mask = _batch(3)
    present = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)

    def logits():
        return last_position_logits(blob.model, ids, mask, ROWS).masked_fill(~present, -torch.inf)

    grad_flags = [p.requires_grad for p in blob.parameters()]
    blob.adapter_config.predict_sample_mode = "linear"
    torch.manual_seed(0)
    probs, draws = predictive_probs(blob, logits, n_samples=10, return_samples=True)
    assert probs.shape == (3, 4) and draws.shape[1:] == (3, 4)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3))
    assert torch.equal(probs[~present], torch.zeros(int((~present).sum())))
    # the samples disagree (MI > 0), and averaging moves probabilities off the mean's
    with torch.no_grad(), blob.sampling("mean"):
        at_mean = torch.softmax(logits(), -1).float()
    assert (probs - at_mean).abs().max() > 1e-3
    # nothing left behind: no gradients stored, flags and observers as they were
    assert all(p.grad is None for p in blob.parameters())
    assert [p.requires_grad for p in blob.parameters()] == grad_flags
    assert all(not layer.delta_observers for layer in blob.adapters().values())
    # inside no_grad as the evaluator calls it: still works
    with torch.no_grad():
        again = predictive_probs(blob, logits, n_samples=10)
    assert again.shape == (3, 4)


def test_linear_mode_on_a_classifier_matches_finite_differences_of_its_trunk():
    blob = get_blob_model(
        tiny_bert(num_labels=2), kind="blob", target_modules=["query", "value"], r=2
    )
    randomize_adapters(blob, scale=1.0)
    with torch.no_grad():
        for layer in blob.adapters().values():
            layer.lora_A_g.uniform_(0.5, 0.8)
        blob.model.classifier.weight.normal_(0.0, 3.0)  # logits that the trunk moves
    blob = blob.double().eval()
    ids = torch.randint(3, 64, (2, 5), generator=torch.Generator().manual_seed(4))

    def logits():
        return blob.model(input_ids=ids).logits

    _, cov = linearized_gaussian(blob, logits)
    expected = _finite_difference_covariance(blob, logits)
    torch.testing.assert_close(cov[:, 1:, 1:], expected, rtol=1e-3, atol=1e-9)
    assert float(expected.min()) > 1e-4


def test_linear_mode_refusals():
    with pytest.raises(ConfigError, match="predict_sample_mode=linear needs a Gaussian A"):
        AdapterConfig(kind="bbb", predict_sample_mode="linear")
    lora = get_blob_model(tiny_llama(), kind="lora", target_modules=["q_proj"])
    ids = torch.randint(3, 64, (2, 5))
    with pytest.raises(ValueError, match="needs Bayesian adapters with a Gaussian A"):
        linearized_gaussian(
            lora, lambda: last_position_logits(lora.model, ids, torch.ones_like(ids), ROWS)
        )
    blob = _llama()
    with pytest.raises(ValueError, match="closed form and draws no weights"):
        next(weight_draws(blob, 2, "linear"))
