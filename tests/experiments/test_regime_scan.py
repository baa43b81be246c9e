"""The regime rule: which scanned step becomes a task's training budget."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import regime_scan  # noqa: E402


def _points(curve: list[tuple[int, float, float]]) -> list[dict]:
    return [{"step": s, "acc": a, "nll": n} for s, a, n in curve]


def test_budget_is_the_first_step_near_the_best_accuracy_once_nll_has_bottomed_out():
    # MRPC's committed scan: ACC within 1 point of 75.2 from step 800; lowest NLL at 600
    points = _points([(600, 73.7, 0.519), (700, 73.8, 0.542), (800, 74.4, 0.522),
                      (900, 74.9, 0.561), (1000, 75.2, 0.541)])  # fmt: skip
    best, lowest, complete = regime_scan.choose_budget(points)
    assert (best["step"], lowest["step"], complete) == (800, 600, True)


def test_budget_moves_on_to_the_lowest_nll_when_accuracy_plateaus_first():
    # accuracy near its best at 400, but the model is still underfit in likelihood until 700
    points = _points([(300, 80.0, 0.80), (400, 88.5, 0.60), (500, 89.0, 0.55),
                      (600, 89.2, 0.50), (700, 89.1, 0.47), (800, 89.0, 0.49)])  # fmt: skip
    best, lowest, complete = regime_scan.choose_budget(points)
    assert (best["step"], lowest["step"], complete) == (700, 700, True)


def test_an_nll_within_a_hundredth_of_a_nat_of_the_lowest_is_low_enough():
    # the 1600-step TREC scan: ACC near its best from 900, NLL flat from 1000 (0.242) with
    # its lowest, 0.236, at 1300: the budget is 1000, not the wobble's minimum
    points = _points([(800, 92.0, 0.277), (900, 92.2, 0.255), (1000, 92.8, 0.242),
                      (1100, 92.5, 0.242), (1300, 92.8, 0.236), (1500, 93.1, 0.241)])  # fmt: skip
    best, lowest, complete = regime_scan.choose_budget(points)
    assert (best["step"], lowest["step"], complete) == (1000, 1300, True)


def test_a_scan_whose_nll_still_falls_at_its_end_is_marked_too_short():
    # the committed 600-step TREC scan: lowest NLL at its last point
    points = _points([(400, 87.3, 0.696), (500, 89.1, 0.574), (600, 89.2, 0.544)])
    best, _, complete = regime_scan.choose_budget(points)
    assert best["step"] == 600 and complete is False
    row = {"dataset": "trec", "lr": 1e-3, "majority_acc": 22.7, "mle_dev_acc": 89.2,
           "mle_dev_ece": 20.5, "mle_dev_nll": 0.544, "steps": 600, "epochs": 2.2,
           "learned": True, "min_nll_step": 600, "min_nll": 0.544, "scan_complete": False}  # fmt: skip
    assert "600 (0.544), too short" in regime_scan._md_row(row)


def test_the_report_knows_the_budget_each_committed_table_tier_trains():
    budgets = regime_scan.table_budgets()
    assert budgets[("gemma-270m", "rte-qa")] == ("gemma-overconfident", 1100)
    assert budgets[("minilm", "mrpc")] == ("minilm-regime", 800)
    row = {"steps": 400, "table_steps": 1100, "table_tier": "gemma-overconfident"}
    assert regime_scan._in_table(row) == "1100, tier gemma-overconfident"
    assert regime_scan._in_table(row | {"steps": 1100}).endswith("(this budget)")
    assert regime_scan._in_table({"steps": 700, "table_steps": None}) == "–"
