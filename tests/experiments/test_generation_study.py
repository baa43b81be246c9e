"""The generation study's budget: the classification regime rule applied to ROUGE-L."""

import json
from dataclasses import replace
from pathlib import Path

from experiments import generation_study


def _scan(tmp_path: Path, curve: list[tuple[int, float, float]]) -> generation_study.Size:
    """A finished budget scan under tmp_path: eval_log rows for all but the last point,
    whose scores are the run's final results (as `blob train` writes them)."""
    size = replace(generation_study.DRY, runs=tmp_path / "runs", results=tmp_path / "results")
    out = generation_study.budget_dir(size)
    out.mkdir(parents=True)
    rows = [{"step": s, "rouge1": r + 8, "rouge2": r - 12, "rougeL": r, "nll": n}
            for s, r, n in curve]  # fmt: skip
    (out / "eval_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:-1]))
    last = {k: v for k, v in rows[-1].items() if k != "step"} | {"steps": rows[-1]["step"]}
    (out / "results-final.json").write_text(json.dumps([last]))
    return size


def test_budget_waits_for_the_nll_after_rouge_has_plateaued(tmp_path):
    # ROUGE-L within 1 point of its best from step 50, NLL within 0.01 of its lowest at 100
    size = _scan(tmp_path, [(25, 20.0, 1.60), (50, 27.5, 1.40), (75, 28.0, 1.30),
                            (100, 28.2, 1.255), (125, 28.1, 1.250), (150, 27.9, 1.252)])  # fmt: skip
    b = generation_study.budget(size)
    assert (b["steps"], b["best_step"], b["min_nll_step"], b["complete"]) == (100, 100, 125, True)
    assert [p["step"] for p in b["curve"]] == [25, 50, 75, 100, 125, 150]


def test_a_scan_whose_nll_still_falls_is_too_short_and_the_report_says_so(tmp_path):
    size = _scan(tmp_path, [(25, 20.0, 1.60), (50, 27.5, 1.40), (75, 28.0, 1.30)])
    b = generation_study.budget(size)
    assert (b["steps"], b["complete"]) == (75, False)
    md = generation_study._budget_md(size, b)
    assert "**75 steps**" in "\n".join(md) and "too short" in "\n".join(md)


def test_the_gamma_axis_shows_where_the_kl_never_acts_and_agrees_with_blob_train():
    """gamma 4 gives DialogSum a cycle longer than any run: sigma stays at its init. In this
    study's 175-step run gamma 8's cycle is too long as well, and `blob train` refuses it."""
    from blob_lora.kl_plan import KLSchedule

    md = generation_study._gamma_axis(175)
    rows = {
        (r.split("|")[1].strip(), r.split("|")[2].strip()[:5]): r
        for r in md
        if r[:3].strip("| ").isdigit()
    }
    assert "KL never acts" in rows[("4", "autho")] and "KL never acts" in rows[("4", "this ")]
    assert "refuses" in rows[("8", "this ")] and "formed" in rows[("8", "autho")]
    assert "near the prior" in rows[("12", "autho")] and "| formed |" in rows[("12", "this ")]
    # the table's refusal is the runner's check (run/prepare.py; tested in tests/run/test_runner.py)
    assert KLSchedule("blob", 12460, 8, 8.0).cycle_length > 175
