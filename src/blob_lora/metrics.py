"""Calibration and uncertainty metrics over plain arrays (ACC, ECE, NLL, Brier, OOD AUROC).

Everything here knows only arrays: torch tensors (any device or dtype) or numpy arrays come
in, are converted to float64 numpy, and Python floats or numpy arrays come out. Binning
follows torchmetrics' ``multiclass_calibration_error`` (the implementation behind the
paper's numbers), so ECE agrees with it; :func:`reliability_bins` is the one place the bins
are computed, so the reliability diagram and the ECE can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ArrayLike = Any  # torch.Tensor | np.ndarray | nested sequence; kept loose so torch stays optional

PROB_FLOOR = 1e-12  # NLL clamps p[label] here: a zero-probability answer costs ~27.6 nats, not inf
ROW_SUM_TOL = 1e-2  # loose enough for bf16 softmax output, tight enough to catch logits

__all__ = [
    "ReliabilityBins",
    "accuracy",
    "auroc",
    "brier",
    "classification_metrics",
    "ece",
    "max_prob",
    "mutual_information",
    "nll",
    "ood_auroc",
    "predictive_entropy",
    "reliability_bins",
    "uncertainty_score",
]


# --------------------------------------------------------------------------- input checks


def _to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """Any tensor/array to numpy without losing precision (bf16 cannot go to numpy directly)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()
        return x.numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} is not an array: {exc}") from exc


def _check_probs(probs: ArrayLike, name: str = "probs", ndim: int = 2) -> np.ndarray:
    """float64 probabilities whose last axis sums to 1; raises ValueError naming the problem."""
    p = _to_numpy(probs, name)
    if p.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {p.dtype}")
    p = p.astype(np.float64, copy=False)
    shape_doc = "(N, C)" if ndim == 2 else "(S, N, C)"
    if p.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}, got shape {tuple(p.shape)}")
    if p.size == 0:
        raise ValueError(f"{name} is empty (shape {tuple(p.shape)})")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or inf")
    if p.min() < 0.0 or p.max() > 1.0 + ROW_SUM_TOL:
        raise ValueError(
            f"{name} must lie in [0, 1], got values in [{p.min():.4g}, {p.max():.4g}] "
            "(logits? apply softmax first)"
        )
    sums = p.sum(-1)
    worst = float(np.abs(sums - 1.0).max())
    if worst > ROW_SUM_TOL:
        raise ValueError(
            f"{name} rows must sum to 1, one sums to {sums.flat[np.abs(sums - 1.0).argmax()]:.4g}"
        )
    return p


def _check_labels(labels: ArrayLike, n: int, n_classes: int) -> np.ndarray:
    """int64 labels of length n in [0, n_classes); integral floats are accepted."""
    y = _to_numpy(labels, "labels")
    if y.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got shape {tuple(y.shape)}")
    if y.shape[0] != n:
        raise ValueError(f"probs has {n} rows but labels has {y.shape[0]} entries")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise ValueError("labels must be integer class indices, got non-integral values")
    elif y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(
            f"labels must be in [0, {n_classes}), got values in [{y.min()}, {y.max()}]"
        )
    return y


def _check_pair(probs: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = _check_probs(probs)
    return p, _check_labels(labels, p.shape[0], p.shape[1])


# --------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics over the top-label confidence.

    ``confidence`` and ``accuracy`` are NaN in empty bins (there is nothing to average), so
    plots skip them and nobody mistakes an empty bin for a 0%-accurate one.
    """

    edges: np.ndarray  # (n_bins + 1,) from 0 to 1
    confidence: np.ndarray  # (n_bins,) mean top-label probability in the bin
    accuracy: np.ndarray  # (n_bins,) fraction of correct top-label predictions in the bin
    count: np.ndarray  # (n_bins,) int64 number of examples in the bin

    @property
    def ece(self) -> float:
        """Count-weighted mean |accuracy - confidence| over non-empty bins (a fraction)."""
        full = self.count > 0
        weights = self.count[full] / self.count.sum()
        return float(np.sum(weights * np.abs(self.accuracy[full] - self.confidence[full])))


def reliability_bins(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> ReliabilityBins:
    """Equal-width bins [lo, hi) over the top-label confidence; a confidence of exactly 1
    falls in the last bin. Matches torchmetrics' bucketing, so ECE agrees with it."""
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    n_bins = int(n_bins)
    p, y = _check_pair(probs, labels)
    conf = p.max(1)
    correct = (p.argmax(1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        mean_acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return ReliabilityBins(edges=edges, confidence=mean_conf, accuracy=mean_acc, count=count)


def accuracy(probs: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of examples whose arg-max class is the label (ties go to the lower index)."""
    p, y = _check_pair(probs, labels)
    return float(np.mean(p.argmax(1) == y))


def ece(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> float:
    """Expected calibration error (L1, equal-width bins) as a fraction in [0, 1]."""
    return reliability_bins(probs, labels, n_bins).ece


def nll(probs: ArrayLike, labels: ArrayLike) -> float:
    """Mean -log p[label]; p is clamped at PROB_FLOOR so one impossible answer stays finite.

    For a Bayesian predictive pass the *averaged* probabilities: the paper's NLL is -log of
    the mean, not the mean of per-sample NLLs.
    """
    p, y = _check_pair(probs, labels)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], PROB_FLOOR))))


def brier(probs: ArrayLike, labels: ArrayLike) -> float:
    """Mean over examples of sum over classes (p - onehot)^2, in [0, 2] (not halved for C=2)."""
    p, y = _check_pair(probs, labels)
    sq = np.square(p).sum(1) - 2.0 * p[np.arange(len(y)), y] + 1.0
    return float(np.mean(sq))


def classification_metrics(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 15
) -> dict[str, float]:
    """The paper's table row: {"acc": %, "ece": %, "nll": nats, "brier": raw}.

    acc and ece are in percent (as the paper and report tables print them); nll and brier
    are raw. The single-metric functions return fractions.
    """
    p, y = _check_pair(probs, labels)
    return {
        "acc": 100.0 * accuracy(p, y),
        "ece": 100.0 * ece(p, y, n_bins),
        "nll": nll(p, y),
        "brier": brier(p, y),
    }


# --------------------------------------------------------------------------- uncertainty


def _entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) over the last axis, with 0 log 0 = 0 (absent choices are fine)."""
    logp = np.log(np.where(p > 0, p, 1.0))
    return -np.sum(p * logp, axis=-1)


def max_prob(probs: ArrayLike) -> np.ndarray:
    """(N,) top-label probability: high means confident (so in-distribution)."""
    return _check_probs(probs).max(1)


def predictive_entropy(probs: ArrayLike) -> np.ndarray:
    """(N,) entropy of the predictive in nats: total uncertainty, high means uncertain."""
    return _entropy(_check_probs(probs))


def mutual_information(sample_probs: ArrayLike) -> np.ndarray:
    """(N,) H(mean_s p_s) - mean_s H(p_s) from (S, N, C) per-sample probabilities.

    The epistemic part of the uncertainty: zero when all weight samples agree, so it is
    only informative for S > 1. Clipped at 0 against round-off.
    """
    s = _check_probs(sample_probs, "sample_probs", ndim=3)
    mi = _entropy(s.mean(0)) - _entropy(s).mean(0)
    return np.maximum(mi, 0.0)


SCORES = ("entropy", "max_prob", "mutual_information")


def uncertainty_score(probs: ArrayLike, score: str = "entropy") -> np.ndarray:
    """(N,) score where higher means more likely out-of-distribution.

    `probs` is (N, C), or (S, N, C) per-sample probabilities which are averaged for
    "entropy" and "max_prob"; "mutual_information" needs (S, N, C). "max_prob" is negated
    so that every score points the same way.
    """
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose one of {', '.join(SCORES)}")
    arr = _to_numpy(probs, "probs")
    if score == "mutual_information":
        return mutual_information(arr)
    if arr.ndim == 3:
        arr = _check_probs(arr, ndim=3).mean(0)
    return predictive_entropy(arr) if score == "entropy" else -max_prob(arr)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with tied values sharing the mean of the ranks they span."""
    uniq, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based rank of each value's first occurrence
    return (first + (counts + 1) / 2.0)[inverse.reshape(-1)]


def auroc(scores_in: ArrayLike, scores_out: ArrayLike) -> float:
    """Area under the ROC curve for telling out-of-distribution from in-distribution,
    where a higher score means "more likely out". Rank-based (Mann-Whitney U), ties count
    half, so 0.5 is chance and 1.0 is perfect separation."""
    a = _to_numpy(scores_in, "scores_in").astype(np.float64).reshape(-1)
    b = _to_numpy(scores_out, "scores_out").astype(np.float64).reshape(-1)
    if a.size == 0 or b.size == 0:
        raise ValueError(
            f"auroc needs in- and out-of-distribution scores, got {a.size} and {b.size}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("auroc scores contain NaN or inf")
    ranks = _average_ranks(np.concatenate([a, b]))
    u = ranks[a.size :].sum() - b.size * (b.size + 1) / 2.0
    return float(u / (a.size * b.size))


def ood_auroc(probs_in: ArrayLike, probs_out: ArrayLike, score: str = "entropy") -> float:
    """AUROC of `score` (see :func:`uncertainty_score`) separating out- from in-distribution
    predictions; pass (S, N, C) samples for "mutual_information"."""
    return auroc(uncertainty_score(probs_in, score), uncertainty_score(probs_out, score))
