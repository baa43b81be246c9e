"""Laplace-LoRA: KFAC factors, marginal likelihood and the GLM predictive, checked against
brute-force computations on problems small enough to do exactly."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from tiny_models import randomize_adapters, tiny_bert, tiny_llama
from torch import nn
from torch.func import functional_call, jacrev

from blob_lora import get_blob_model
from blob_lora.errors import BlobLoraError, ConfigError
from blob_lora.methods.base import PostTrainContext
from blob_lora.methods.laplace import METHOD, KronLaplace
from blob_lora.tasks.lm_scoring import last_position_logits


class TinyMLP(nn.Module):
    """in 4 -> 5 -> 3 classes; token inputs (B, T, 4) are averaged after the last layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 5)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc2(torch.tanh(self.fc1(x)))
        return out.mean(1) if out.dim() == 3 else out


def _mlp_blob():
    torch.manual_seed(0)
    blob = get_blob_model(TinyMLP(), kind="lora", r=2, alpha=4.0, target_modules=["fc1", "fc2"])
    randomize_adapters(blob, scale=0.5)
    return blob.double().eval()  # float64 so exact comparisons are tight


def _params(blob) -> dict[str, torch.Tensor]:
    """lora_A, lora_B of every adapter, in the posterior's block order."""
    out = {}
    for name, layer in blob.adapters().items():
        out[f"{name}.lora_A"] = layer.lora_A.detach()
        out[f"{name}.lora_B"] = layer.lora_B.detach()
    return out


def _dense_precision(post: KronLaplace, blob, delta: float | dict) -> torch.Tensor:
    """Block-diagonal ``Q (x) G + delta I`` over all adapter weights; lora_B's G embedded
    at the rows the fit saw (zero curvature elsewhere). ``delta``: one, or one per block."""
    blocks = []
    for name, layer in blob.adapters().items():
        lp = post.layers[name]
        q, g = lp.a.factors()
        blocks.append((name, "a", torch.kron(g, q)))
        q, g_seen = lp.b.factors()
        g = torch.zeros(layer.out_features, layer.out_features, dtype=torch.float64)
        g[lp.rows[:, None], lp.rows[None, :]] = g_seen
        blocks.append((name, "b", torch.kron(g, q)))
    return torch.block_diag(
        *(
            h
            + (delta[(n, w)] if isinstance(delta, dict) else delta)
            * torch.eye(h.shape[0], dtype=torch.float64)
            for n, w, h in blocks
        )
    )


def softmax_hessian(logits: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits.double(), -1)
    return torch.diag(p) - torch.outer(p, p)


def _fit(blob, batches, class_logits, **kwargs) -> KronLaplace:
    return KronLaplace.fit(blob, batches, class_logits, dtype=torch.float64, **kwargs)


@pytest.mark.parametrize("tokens", [1, 3])
def test_kfac_of_one_example_is_the_exact_ggn(tokens):
    """One example (tokens identical when T > 1): every Kronecker block equals the exact
    GGN block J^T Lambda J of that weight."""
    blob = _mlp_blob()
    x = torch.randn(1, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = x.unsqueeze(1).expand(1, tokens, 4).contiguous() if tokens > 1 else x
    batch = {"x": x, "labels": torch.tensor([1])}
    post = _fit(blob, [batch], lambda b: blob.model(b["x"]))

    params = _params(blob)

    def f(p):
        return functional_call(blob.model, p, (x,))[0]

    jac = jacrev(f)(params)  # {name: (C, *shape)}
    lam = softmax_hessian(f(params).detach())
    for name, lp in post.layers.items():
        for which, block in (("lora_A", lp.a), ("lora_B", lp.b)):
            j = jac[f"{name}.{which}"].flatten(1).double()
            exact = j.T @ lam @ j
            q, g = block.factors()
            torch.testing.assert_close(torch.kron(g, q), exact, rtol=1e-6, atol=1e-10)


PER_BLOCK = {("fc1", "a"): 0.3, ("fc1", "b"): 5.0, ("fc2", "a"): 0.7, ("fc2", "b"): 40.0}


@pytest.mark.parametrize("delta", [0.7, PER_BLOCK], ids=["scalar", "per-block"])
def test_glm_variance_matches_brute_force_jacobians(delta):
    blob = _mlp_blob()
    gen = torch.Generator().manual_seed(1)
    batches = [
        {
            "x": torch.randn(6, 4, generator=gen, dtype=torch.float64),
            "labels": torch.randint(0, 3, (6,)),
        }
    ]
    post = _fit(blob, batches, lambda b: blob.model(b["x"]))
    post.prior_precision = delta
    x = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    mean, var = post.moments(blob, lambda: blob.model(x))

    params = _params(blob)
    jac = jacrev(lambda p: functional_call(blob.model, p, (x,)))(params)  # (B, C, *shape)
    j = torch.cat([jac[k].flatten(2) for k in params], dim=2).double()
    sigma = torch.linalg.inv(_dense_precision(post, blob, delta))
    expected = j @ sigma @ j.transpose(1, 2)
    torch.testing.assert_close(var.double(), expected, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(mean.double(), blob.model(x).detach())


def test_glm_variance_with_restricted_rows_on_a_causal_lm():
    """Multi-token inputs, a LoRA'd LM head scored on a few rows (forward_rows), and
    prediction rows partly outside those seen in the fit (they keep the prior)."""
    torch.manual_seed(0)
    blob = get_blob_model(tiny_llama(), kind="lora", r=2, target_modules=["q_proj", "lm_head"])
    randomize_adapters(blob, scale=0.2)
    blob.eval()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 64, (4, 5), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # a left-padded row: padding does not reach the logits
    fit_rows, eval_rows = torch.tensor([10, 11, 12]), torch.tensor([12, 13])
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 2, 1])}

    def logits(b, rows):
        return last_position_logits(blob.model, b["input_ids"], b["attention_mask"], rows)

    post = _fit(blob, [batch], lambda b: logits(b, fit_rows))
    assert post.layers["lm_head"].rows.tolist() == [10, 11, 12]
    post.prior_precision = 2.0
    test = {"input_ids": torch.randint(3, 64, (3, 5), generator=gen), "attention_mask": None}
    test["attention_mask"] = torch.ones_like(test["input_ids"])
    _, var = post.moments(blob, lambda: logits(test, eval_rows))

    weights = [w for layer in blob.adapters().values() for w in (layer.lora_A, layer.lora_B)]
    sigma = torch.linalg.inv(_dense_precision(post, blob, 2.0))
    for i in range(3):  # brute force: each example alone, one backward pass per class
        one = {k: v[i : i + 1] for k, v in test.items()}
        rows = []
        for c in range(len(eval_rows)):
            with torch.enable_grad():
                grads = torch.autograd.grad(logits(one, eval_rows)[0, c], weights)
            rows.append(torch.cat([g.flatten() for g in grads]).double())
        j = torch.stack(rows)
        torch.testing.assert_close(var[i].double(), j @ sigma @ j.T, rtol=1e-4, atol=1e-8)


def _mlp_batches() -> list[dict[str, torch.Tensor]]:
    """Three batches of 8 random inputs and labels for the MLP."""
    gen = torch.Generator().manual_seed(2)
    return [
        {
            "x": torch.randn(8, 4, generator=gen, dtype=torch.float64),
            "labels": torch.randint(0, 3, (8,), generator=gen),
        }
        for _ in range(3)
    ]


def test_marginal_likelihood_prior_precision_is_the_grid_maximum():
    blob = _mlp_blob()
    batches = _mlp_batches()
    post = _fit(blob, batches, lambda b: blob.model(b["x"]))
    delta = post.optimize_prior_precision()
    assert math.isfinite(delta) and delta > 0
    best = post.log_marginal_likelihood(delta)
    grid = torch.logspace(-6, 10, 801, dtype=torch.float64).tolist()
    assert best >= max(post.log_marginal_likelihood(d) for d in grid) - 1e-9 * abs(best)
    assert best > post.log_marginal_likelihood(delta * 1.2)
    assert best > post.log_marginal_likelihood(delta / 1.2)
    # the evidence uses the fit-set log-likelihood of the MAP
    with torch.no_grad():
        logp = sum(
            torch.log_softmax(blob.model(b["x"]), -1)[torch.arange(8), b["labels"]].sum()
            for b in batches
        )
    assert post.loglik == pytest.approx(logp.item(), rel=1e-6)


def _dense_log_evidence(post: KronLaplace, blob, delta: float | dict) -> float:
    """The Laplace evidence from the dense precision: the check on the eigenvalue sums."""
    p = _dense_precision(post, blob, delta)
    theta = torch.cat([w.flatten() for w in _params(blob).values()]).double()

    def block_delta(key: str) -> float:
        name, which = key.rsplit(".", 1)
        return delta[(name, which[-1].lower())] if isinstance(delta, dict) else delta

    prior = torch.cat(
        [
            torch.full((w.numel(),), block_delta(k), dtype=torch.float64)
            for k, w in _params(blob).items()
        ]
    )
    return float(
        post.loglik
        - 0.5 * (prior * theta.square()).sum()
        + 0.5 * prior.log().sum()
        - 0.5 * torch.logdet(p)
    )


@pytest.mark.parametrize("structure", ["ab", "layerwise"])
def test_grouped_prior_precisions_maximize_the_evidence_per_group(structure):
    """Weights of very different sizes (lora_B 100x smaller than lora_A, as after a short
    run from B = 0): a precision per group beats the best single one, is a maximum in each
    group's direction, and gives lora_B the tighter prior."""
    blob = _mlp_blob()
    with torch.no_grad():
        for layer in blob.adapters().values():
            layer.lora_B.mul_(0.01)
    batches = _mlp_batches()
    post = _fit(blob, batches, lambda b: blob.model(b["x"]))
    scalar = post.optimize_prior_precision("scalar")
    grouped = post.optimize_prior_precision(structure)
    assert isinstance(scalar, float) and set(grouped) == set(PER_BLOCK)
    for delta in (scalar, grouped, PER_BLOCK):
        assert post.log_marginal_likelihood(delta) == pytest.approx(
            _dense_log_evidence(post, blob, delta), rel=1e-9
        )
    best = post.log_marginal_likelihood(grouped)
    assert best > post.log_marginal_likelihood(scalar) + 1.0
    for group in post.prior_groups(structure):
        for factor in (1.2, 1 / 1.2):
            moved = {k: v * factor if k in group else v for k, v in grouped.items()}
            assert best > post.log_marginal_likelihood(moved)
    for name in ("fc1", "fc2"):
        assert grouped[(name, "b")] > 10 * grouped[(name, "a")]
    assert len(post.prior_groups(structure)) == (2 if structure == "ab" else 4)


def test_unknown_prior_structure_is_refused():
    with pytest.raises(
        ConfigError,
        match="method_options.prior_structure: Input should be 'scalar', 'ab' or 'layerwise'",
    ):
        replace(METHOD, prior_structure="per-layer")


def _bert_setup():
    torch.manual_seed(0)
    blob = get_blob_model(tiny_bert(), kind="lora", target_modules=["query", "value", "classifier"])
    randomize_adapters(blob, scale=1.0)  # a confident MAP (mean max-prob ~0.9)
    gen = torch.Generator().manual_seed(0)
    batches = [
        {
            "input_ids": torch.randint(3, 64, (8, 6), generator=gen),
            "attention_mask": torch.ones(8, 6, dtype=torch.long),
            "labels": torch.randint(0, 3, (8,), generator=gen),
        }
        for _ in range(3)
    ]

    def class_logits(b):
        return blob.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits

    context = PostTrainContext(
        train_batches=lambda: iter(batches),
        anchor_batches=lambda: iter(batches[:1]),
        class_logits=class_logits,
        n_train=24,
    )
    return blob, batches, class_logits, context


@pytest.mark.parametrize(
    ("link", "structure"), [("probit", "scalar"), ("mc", "scalar"), ("probit", "ab")]
)
def test_predictive_is_less_confident_than_the_map(link, structure):
    blob, batches, class_logits, context = _bert_setup()
    method = replace(METHOD, link=link, prior_structure=structure)
    model = method.post_train(blob, context)
    found = model.method_state.prior_precision
    assert min(found.values() if structure == "ab" else [found]) > 0
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():  # the runner predicts under no_grad
        probs, samples = method.predict(model, lambda: class_logits(batches[0]), 16)
        map_probs, _ = method.predict(model, lambda: class_logits(batches[0]), 0)
    assert samples.shape == (16, 8, 3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(8))
    torch.testing.assert_close(map_probs, torch.softmax(class_logits(batches[0]).detach(), -1))
    assert probs.max(-1).values.mean() < map_probs.max(-1).values.mean()
    assert samples.std(0).max() > 1e-3
    assert all(p.grad is None for p in model.parameters())


class _FixedMoments(KronLaplace):
    """A posterior that returns given logit moments, to test the links alone."""

    def __init__(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        self.mean, self.var = mean, var

    def moments(self, model, class_logits):
        return self.mean, self.var


def _predict_with_moments(mean, var, **options):
    blob, *_ = _bert_setup()
    blob.method_state = _FixedMoments(mean, var)
    torch.manual_seed(0)
    return replace(METHOD, **options).predict(blob, lambda: mean, 10)


def test_mc_link_matches_quadrature_and_keeps_logit_correlations():
    """Two classes: the predictive is E[sigmoid(d)], d ~ N(mu_0 - mu_1, v_00 + v_11 - 2 v_01),
    a 1-D integral done by Gauss-Hermite. Noise shared by both logits (common mode) leaves
    the softmax unchanged; the probit link, which sees only the diagonal, does not."""
    mean = torch.tensor([[1.5, -0.5], [0.3, 0.0]], dtype=torch.float64)
    independent = torch.diag_embed(torch.tensor([[2.0, 1.0], [0.5, 4.0]], dtype=torch.float64))
    common = torch.full((2, 2, 2), 9.0, dtype=torch.float64)
    nodes, weights = np.polynomial.hermite.hermgauss(80)
    for var in (independent, common, independent + common):
        mu = mean[:, 0] - mean[:, 1]
        sd = (var[:, 0, 0] + var[:, 1, 1] - 2 * var[:, 0, 1]).sqrt()
        d = mu[:, None] + math.sqrt(2) * sd[:, None] * torch.from_numpy(nodes)
        exact = (torch.sigmoid(d) * torch.from_numpy(weights)).sum(1) / math.sqrt(math.pi)
        probs, samples = _predict_with_moments(mean, var, link="mc", link_samples=200_000)
        assert samples.shape == (10, 2, 2)
        torch.testing.assert_close(probs[:, 0], exact, atol=4e-3, rtol=0)
    probs, _ = _predict_with_moments(mean, common, link="mc")
    torch.testing.assert_close(probs, torch.softmax(mean, -1))
    probit, _ = _predict_with_moments(mean, common, link="probit")
    assert probit[0, 0] < torch.softmax(mean, -1)[0, 0] - 0.1


def test_absent_choices_stay_at_zero_probability():
    blob, batches, class_logits, context = _bert_setup()
    model = METHOD.post_train(blob, context)

    def masked():
        return class_logits(batches[0]).masked_fill(torch.tensor([False, False, True]), -math.inf)

    with torch.no_grad():
        probs, samples = METHOD.predict(model, masked, 4)
    assert torch.isfinite(probs).all() and torch.isfinite(samples).all()
    assert probs[:, 2].max() == 0 and samples[..., 2].max() == 0


def test_fit_on_anchor_scales_to_the_training_set_and_predict_needs_a_fit():
    blob, batches, class_logits, context = _bert_setup()
    with pytest.raises(BlobLoraError, match="no fitted posterior"):
        METHOD.predict(blob, lambda: class_logits(batches[0]), 4)
    full = KronLaplace.fit(blob, batches[:1], class_logits)
    scaled = KronLaplace.fit(blob, batches[:1], class_logits, n_data=24)
    for name in full.layers:
        torch.testing.assert_close(scaled.layers[name].a.out_vals, 3 * full.layers[name].a.out_vals)


def test_adam_prior_fit_is_laplace_torchs_hundred_steps_from_one():
    """prior_fit=adam: 100 Adam steps (lr 0.1) on log delta from delta=1, checked against a
    hand-written Adam on the dense evidence; it ends near, not necessarily at, the maximum."""
    blob = _mlp_blob()
    post = _fit(blob, _mlp_batches(), lambda b: blob.model(b["x"]))
    exact = post.optimize_prior_precision()
    found = post.optimize_prior_precision_adam(steps=100, lr=0.1, init=1.0)

    x, m, v, h = 0.0, 0.0, 0.0, 1e-6  # log delta; Adam moments; finite-difference step
    for t in range(1, 101):
        grad = -(
            _dense_log_evidence(post, blob, math.exp(x + h))
            - _dense_log_evidence(post, blob, math.exp(x - h))
        ) / (2 * h)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        x -= 0.1 * (m / (1 - 0.9**t)) / (math.sqrt(v / (1 - 0.999**t)) + 1e-8)
    assert found == pytest.approx(math.exp(x), rel=1e-3)
    assert post.log_marginal_likelihood(found) <= post.log_marginal_likelihood(exact) + 1e-9
    assert replace(METHOD, prior_fit="adam").prior_fit == "adam"
    with pytest.raises(ConfigError, match="prior_fit"):
        replace(METHOD, prior_fit="newton")
