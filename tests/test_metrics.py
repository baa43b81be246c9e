"""metrics.py against torchmetrics / sklearn and against constructions with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_calibration_error,
)

from blob_lora import metrics as M

SIZES = [(1, 2), (7, 2), (64, 5), (500, 5), (333, 3), (1000, 10)]


def _random_case(n: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Sharper or flatter rows depending on the seed, so several ECE regimes are covered.
    logits = torch.randn(n, c, generator=g, dtype=torch.float64) * (0.5 + seed % 4)
    return torch.softmax(logits, -1), torch.randint(0, c, (n,), generator=g)


@pytest.mark.parametrize("n,c", SIZES)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_acc_and_ece_agree_with_torchmetrics(n: int, c: int, seed: int) -> None:
    probs, labels = _random_case(n, c, seed)
    tm_ece = multiclass_calibration_error(probs, labels, num_classes=c, n_bins=15, norm="l1")
    tm_acc = multiclass_accuracy(probs, labels, num_classes=c, average="micro")
    # torchmetrics casts to float32 before binning, hence the 1e-6 tolerance.
    assert M.ece(probs, labels) == pytest.approx(tm_ece.item(), abs=1e-6)
    assert M.accuracy(probs, labels) == pytest.approx(tm_acc.item(), abs=1e-6)
    out = M.classification_metrics(probs, labels)
    assert set(out) == {"acc", "ece", "nll", "brier"}
    assert out["acc"] == pytest.approx(100 * tm_acc.item(), abs=1e-4)
    assert out["ece"] == pytest.approx(100 * tm_ece.item(), abs=1e-4)


@pytest.mark.parametrize("n_bins", [1, 5, 10, 20])
def test_ece_other_bin_counts_agree_with_torchmetrics(n_bins: int) -> None:
    probs, labels = _random_case(400, 4, 5)
    expected = multiclass_calibration_error(probs, labels, num_classes=4, n_bins=n_bins)
    assert M.ece(probs, labels, n_bins=n_bins) == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("n,c", SIZES)
def test_nll_and_brier_agree_with_sklearn_and_torch(n: int, c: int) -> None:
    probs, labels = _random_case(n, c, 7)
    p, y = probs.numpy(), labels.numpy()
    classes = list(range(c))
    assert M.nll(probs, labels) == pytest.approx(log_loss(y, p, labels=classes), rel=1e-9)
    torch_nll = torch.nn.functional.nll_loss(probs.log(), labels).item()
    assert M.nll(probs, labels) == pytest.approx(torch_nll, rel=1e-12)
    sk_brier = brier_score_loss(y, p, labels=classes, scale_by_half=False)
    assert M.brier(probs, labels) == pytest.approx(sk_brier, rel=1e-9)
    onehot = torch.nn.functional.one_hot(labels, c).double()
    assert M.brier(probs, labels) == pytest.approx(((probs - onehot) ** 2).sum(1).mean().item())
    out = M.classification_metrics(probs, labels)
    assert out["nll"] == pytest.approx(torch_nll, rel=1e-12)
    assert out["brier"] == pytest.approx(sk_brier, rel=1e-9)


def test_nll_is_finite_when_the_label_has_zero_probability() -> None:
    # A zero column for an absent choice, and one example labelled with it.
    probs = torch.tensor([[0.5, 0.5, 0.0], [0.9, 0.1, 0.0]])
    labels = torch.tensor([0, 2])
    value = M.nll(probs, labels)
    assert math.isfinite(value)
    assert value == pytest.approx((-math.log(0.5) - math.log(M.PROB_FLOOR)) / 2)


def test_perfectly_calibrated_construction_has_zero_ece() -> None:
    # 20 examples at each confidence, exactly that fraction of them correct.
    rows, labels = [], []
    for conf, n_correct in [(0.6, 12), (0.75, 15), (0.9, 18), (1.0, 20)]:
        rows += [[conf, 1 - conf]] * 20
        labels += [0] * n_correct + [1] * (20 - n_correct)
    probs, y = np.array(rows), np.array(labels)
    assert M.ece(probs, y) == pytest.approx(0.0, abs=1e-12)
    assert M.accuracy(probs, y) == pytest.approx(65 / 80)


def test_labels_drawn_from_the_predictive_give_near_zero_ece() -> None:
    # Calibrated by construction: each label is a draw from its own predicted distribution.
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(5, 0.3), size=100_000)
    labels = (rng.random((100_000, 1)) > probs.cumsum(1)).sum(1).clip(max=4)
    assert M.ece(probs, labels) < 0.01
    # The same probabilities with labels flipped away from the top class are badly calibrated.
    wrong = (probs.argmax(1) + 1) % 5
    assert M.ece(probs, wrong) == pytest.approx(probs.max(1).mean(), rel=1e-9)


def test_reliability_bins_partition_the_examples_and_give_ece() -> None:
    probs, labels = _random_case(300, 3, 1)
    bins = M.reliability_bins(probs, labels, n_bins=10)
    assert bins.edges.shape == (11,) and bins.count.shape == (10,)
    assert bins.count.sum() == 300
    conf = probs.max(1).values.numpy()
    for k in range(10):
        inside = (conf >= bins.edges[k]) & (conf < bins.edges[k + 1])
        assert bins.count[k] == inside.sum()
        if inside.any():
            assert bins.confidence[k] == pytest.approx(conf[inside].mean())
        else:
            assert np.isnan(bins.confidence[k]) and np.isnan(bins.accuracy[k])
    assert bins.ece == pytest.approx(M.ece(probs, labels, n_bins=10))


def test_numpy_lists_and_low_precision_tensors_give_the_same_answers() -> None:
    probs, labels = _random_case(200, 4, 3)
    ref = M.classification_metrics(probs, labels)
    assert M.classification_metrics(probs.numpy(), labels.numpy()) == ref
    assert M.classification_metrics(probs.tolist(), labels.tolist()) == ref
    low = M.classification_metrics(probs.float(), labels.int())
    assert low["nll"] == pytest.approx(ref["nll"], rel=1e-5)
    half = M.classification_metrics(probs.bfloat16(), labels)  # bf16 rows sum to 1 only roughly
    assert half["acc"] == pytest.approx(ref["acc"], abs=2.0)


def _entropy_by_hand(p: torch.Tensor) -> torch.Tensor:
    return torch.special.entr(p).sum(-1)


def test_max_prob_and_entropy() -> None:
    probs = torch.tensor([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.7, 0.2, 0.1, 0.0]])
    np.testing.assert_allclose(M.max_prob(probs), [0.25, 1.0, 0.7])
    np.testing.assert_allclose(
        M.predictive_entropy(probs), _entropy_by_hand(probs.double()).numpy(), atol=1e-7
    )
    assert M.predictive_entropy(probs)[0] == pytest.approx(math.log(4))
    assert M.predictive_entropy(probs)[1] == 0.0


def test_mutual_information_is_zero_when_samples_agree() -> None:
    probs, _ = _random_case(50, 5, 2)
    same = probs.unsqueeze(0).expand(8, -1, -1)
    np.testing.assert_allclose(M.mutual_information(same), 0.0, atol=1e-12)


def test_mutual_information_matches_hand_computation_and_is_positive() -> None:
    g = torch.Generator().manual_seed(4)
    samples = torch.softmax(torch.randn(6, 40, 3, generator=g, dtype=torch.float64) * 2, -1)
    by_hand = _entropy_by_hand(samples.mean(0)) - _entropy_by_hand(samples).mean(0)
    mi = M.mutual_information(samples)
    assert mi.shape == (40,)
    np.testing.assert_allclose(mi, by_hand.numpy(), atol=1e-12)
    assert (mi > 0).all()
    # Two confident samples that disagree: MI is the full log 2.
    split = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert M.mutual_information(split)[0] == pytest.approx(math.log(2))


@pytest.mark.parametrize("n_in,n_out", [(1, 1), (10, 30), (200, 50)])
@pytest.mark.parametrize("ties", [False, True])
def test_auroc_matches_sklearn(n_in: int, n_out: int, ties: bool) -> None:
    rng = np.random.default_rng(n_in + n_out + ties)
    if ties:  # few distinct values: many ties inside and across the two groups
        s_in, s_out = rng.integers(0, 4, n_in), rng.integers(1, 5, n_out)
    else:
        s_in, s_out = rng.normal(0, 1, n_in), rng.normal(0.7, 1, n_out)
    expected = roc_auc_score(
        np.r_[np.zeros(n_in), np.ones(n_out)], np.r_[s_in, s_out].astype(float)
    )
    assert M.auroc(s_in, s_out) == pytest.approx(expected, abs=1e-12)
    assert M.auroc(torch.as_tensor(s_in), torch.as_tensor(s_out)) == pytest.approx(expected)


def test_auroc_extremes() -> None:
    assert M.auroc([0.1, 0.2], [0.3, 0.9]) == 1.0
    assert M.auroc([0.3, 0.9], [0.1, 0.2]) == 0.0
    assert M.auroc([1.0, 1.0], [1.0, 1.0]) == 0.5


@pytest.mark.parametrize("score", ["entropy", "max_prob", "mutual_information"])
def test_ood_auroc_matches_sklearn_on_each_score(score: str) -> None:
    g = torch.Generator().manual_seed(9)
    # In-distribution: confident samples that agree; out: flatter samples that disagree.
    base_in = torch.randn(1, 80, 4, generator=g, dtype=torch.float64) * 3
    s_in = torch.softmax(base_in + 0.3 * torch.randn(5, 80, 4, generator=g), -1)
    s_out = torch.softmax(torch.randn(5, 60, 4, generator=g, dtype=torch.float64) * 1.5, -1)
    value = M.ood_auroc(s_in, s_out, score=score)
    if score == "mutual_information":
        u_in = _entropy_by_hand(s_in.mean(0)) - _entropy_by_hand(s_in).mean(0)
        u_out = _entropy_by_hand(s_out.mean(0)) - _entropy_by_hand(s_out).mean(0)
    elif score == "entropy":
        u_in, u_out = _entropy_by_hand(s_in.mean(0)), _entropy_by_hand(s_out.mean(0))
    else:
        u_in, u_out = -s_in.mean(0).max(1).values, -s_out.mean(0).max(1).values
    y = np.r_[np.zeros(80), np.ones(60)]
    assert value == pytest.approx(roc_auc_score(y, torch.cat([u_in, u_out]).numpy()), abs=1e-9)
    assert value > 0.7  # the construction is separable by every score
    if score != "mutual_information":  # (N, C) inputs work too
        assert M.ood_auroc(s_in.mean(0), s_out.mean(0), score=score) == pytest.approx(value)


GOOD_P = [[0.7, 0.3], [0.4, 0.6]]


@pytest.mark.parametrize(
    "probs,labels,match",
    [
        (GOOD_P, [0, 1, 1], "2 rows but labels has 3"),
        (GOOD_P, [0, 2], r"labels must be in \[0, 2\)"),
        (GOOD_P, [-1, 0], r"labels must be in \[0, 2\)"),
        (GOOD_P, [0.5, 1.0], "non-integral"),
        (GOOD_P, [[0, 1]], r"labels must have shape \(N,\)"),
        ([[float("nan"), 1.0], [0.4, 0.6]], [0, 1], "NaN"),
        ([0.7, 0.3], [0], r"probs must have shape \(N, C\)"),
        ([[2.0, -1.0], [0.4, 0.6]], [0, 1], r"\[0, 1\]"),
        ([[0.5, 0.2], [0.4, 0.6]], [0, 1], "sum to 1"),
        (np.zeros((0, 3)), [], "empty"),
    ],
)
def test_bad_classification_inputs_raise(probs, labels, match) -> None:
    for fn in (M.accuracy, M.ece, M.nll, M.brier, M.classification_metrics, M.reliability_bins):
        with pytest.raises(ValueError, match=match):
            fn(np.asarray(probs), np.asarray(labels))


def test_bad_uncertainty_inputs_raise() -> None:
    with pytest.raises(ValueError, match=r"\(S, N, C\)"):
        M.mutual_information(np.asarray(GOOD_P))
    with pytest.raises(ValueError, match="unknown score"):
        M.ood_auroc(GOOD_P, GOOD_P, score="variance")
    with pytest.raises(ValueError, match=r"\(S, N, C\)"):
        M.ood_auroc(GOOD_P, GOOD_P, score="mutual_information")
    with pytest.raises(ValueError, match="got 0 and 2"):
        M.auroc([], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        M.auroc([float("nan")], [0.1])
    with pytest.raises(ValueError, match="n_bins"):
        M.ece(GOOD_P, [0, 1], n_bins=0)
    with pytest.raises(ValueError, match="NaN"):
        M.predictive_entropy([[float("nan"), 1.0]])
