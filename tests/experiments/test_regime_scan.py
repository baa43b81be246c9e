"""The regime rule: which scanned step becomes a task's training budget."""

from experiments import regime_scan


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


def test_budget_is_not_a_step_whose_accuracy_is_far_from_the_best():
    # NLL is low enough from 200, but accuracy there is 5 points below the best: the budget
    # is the first step from 200 on that is within a point of the best (300), not 200
    points = _points([(100, 80.0, 0.50), (200, 75.0, 0.40), (300, 80.0, 0.405)])
    best, lowest, complete = regime_scan.choose_budget(points)
    assert (best["step"], lowest["step"], complete) == (300, 200, True)


def test_a_margin_met_exactly_counts_despite_float_rounding():
    # 64.01 - 1.0 > 63.01 in floating point
    points = _points([(100, 63.01, 0.50), (200, 64.01, 0.55)])
    assert regime_scan.choose_budget(points)[0]["step"] == 100


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
    assert ("gemma-270m", "rte-qa", "gemma-overconfident", 1100) in budgets
    assert ("gemma-270m", "rte-qa", "oc-gemma", 1100) in budgets
    assert ("minilm", "mrpc", "minilm-regime", 800) in budgets
    assert ("minilm", "mrpc", "oc-minilm", 1000) in budgets
    row = {"table": [{"tier": "minilm-regime", "steps": 800}, {"tier": "oc-minilm", "steps": 1000}]}
    assert regime_scan._in_table(row) == "800 (minilm-regime), 1000 (oc-minilm)"
    assert regime_scan._in_table({"table": []}) == "–"


def _committed_curve(task: str) -> list[dict]:
    import json

    rows = json.loads(regime_scan.REGIME_JSON.read_text())
    return next(r["curve"] for r in rows if r["dataset"] == task and not r.get("long_scan"))


def test_the_overconfident_budget_is_the_best_accuracy_where_ece_has_doubled_past_8():
    # the committed scans: RTE-qa's is the budget the Gemma tier was trained at (1100, ECE
    # 20.9 against its lowest 7.3); MRPC's the end of its scan (1000, ECE 9.5 against 2.8)
    rte_qa = regime_scan.overconfident_budget(_committed_curve("rte-qa"), earliest=400)
    assert (rte_qa["step"], round(rte_qa["ece"], 1)) == (1100, 20.9)
    mrpc = regime_scan.overconfident_budget(_committed_curve("mrpc"), earliest=800)
    assert (mrpc["step"], round(mrpc["ece"], 1)) == (1000, 9.5)
    # TREC stays calibrated and AG News only mildly overconfident (ECE <= 4.6): none
    assert regime_scan.overconfident_budget(_committed_curve("trec"), earliest=1000) is None
    assert regime_scan.overconfident_budget(_committed_curve("ag-news"), earliest=800) is None
    # an ECE past 8 that has not doubled from the scan's lowest does not count
    points = [{"step": s, "acc": 80.0, "ece": e} for s, e in [(100, 5.0), (200, 9.0)]]
    assert regime_scan.overconfident_budget(points, earliest=100) is None


def test_a_long_scan_is_its_own_job_and_folder_beside_the_first():
    jobs = regime_scan.jobs(["trec:long"])
    assert jobs == [("trec", 1e-3, True)]
    assert ("trec", 1e-3, False) in regime_scan.jobs(["trec"])
    assert ("trec", 1e-3, True) not in regime_scan.jobs(["trec"])
    long_dir, first_dir = (
        regime_scan.scan_dir("trec", 1e-3, True),
        regime_scan.scan_dir("trec", 1e-3),
    )
    assert long_dir != first_dir and long_dir.parent == first_dir.parent
    cmd = " ".join(regime_scan.command("trec", 1e-3, long=True))
    steps, every = regime_scan.LONG_SCANS["trec"]
    assert f"max_steps={steps}" in cmd and f"eval_every={every}" in cmd
    assert str(long_dir) in cmd


def test_a_long_scan_row_takes_its_overconfident_budget_from_its_own_curve():
    # calibrated early (ECE 2), overconfident late: the late step with ECE >= 8 and the best ACC
    curve = [(250, 80.0, 9.0, 0.60), (500, 90.0, 2.0, 0.30), (750, 91.0, 3.0, 0.29),
             (1000, 92.0, 8.5, 0.33), (1250, 91.5, 10.0, 0.36)]  # fmt: skip
    points = [
        {"step": s, "acc": a, "ece": e, "nll": n, "majority_acc": 22.7} for s, a, e, n in curve
    ]
    row = regime_scan.scan_row("trec", 1e-3, True, points, [("minilm", "trec", "oc-minilm", 1000)])
    assert row["long_scan"] is True and row["scan_steps"] == regime_scan.LONG_SCANS["trec"][0]
    assert row["steps"] == 750  # the first within 1 point of 92.0, past the lowest NLL (0.29)
    assert row["overconfident"]["step"] == 1000 and row["overconfident"]["min_ece"] == 2.0
    assert row["table"] == [{"tier": "oc-minilm", "steps": 1000}]
    assert regime_scan._md_row(row).startswith("| trec (long scan) | 0.001 |")


def test_a_scan_still_running_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(regime_scan, "RUNS", tmp_path)
    monkeypatch.setattr(regime_scan.kept, "where", lambda out: out)
    out = regime_scan.scan_dir("trec", 1e-3, long=True)
    out.mkdir(parents=True)
    (out / "eval_log.jsonl").write_text('{"step": 250, "acc": 48.3, "ece": 24.9, "nll": 1.46}\n')
    assert regime_scan.curve("trec", 1e-3, long=True) == []
    (out / "results-final.json").write_text(
        '[{"steps": 500, "acc": 85.0, "ece": 10.4, "nll": 0.54}]'
    )
    assert [p["step"] for p in regime_scan.curve("trec", 1e-3, long=True)] == [250, 500]
