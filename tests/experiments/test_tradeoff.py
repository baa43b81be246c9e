"""The trade-off study's pre-declared rule, and the runs it plans."""

import argparse
import json

import pytest

from blob_lora.run.config_file import load_run_config
from experiments import tradeoff


def _rows(table: dict) -> dict:
    """{(name, N): [(seed, acc, ece, nll), ...]} -> the study's rows."""
    return {
        key: [{"seed": s, "acc": a, "ece": e, "nll": n, "n_samples": key[1]} for s, a, e, n in v]
        for key, v in table.items()
    }


def test_the_rule_guards_accuracy_then_takes_the_lowest_nll_and_breaks_ties_by_ece():
    rows = _rows({
        ("mle", 0): [(0, 75.0, 9.0, 0.55)],
        ("ts", 0): [(0, 75.0, 2.0, 0.50)],  # a baseline: never chosen
        ("authors", 10): [(0, 72.0, 3.0, 0.47)],  # best NLL, but 3 points below MLE
        ("default", 10): [(0, 74.5, 5.0, 0.500)],
        ("default", 0): [(0, 74.5, 6.0, 0.503)],  # a tie on NLL, higher ECE
        ("sigma-only", 10): [(0, 76.0, 4.0, 0.504)],  # a tie on NLL, lower ECE: chosen
    })  # fmt: skip
    picked = tradeoff.choose(rows)
    chosen = picked["chosen"]
    assert (chosen["setting"], chosen["n"]) == ("sigma-only", 10)
    eligible = {(c["setting"], c["n"]): c["eligible"] for c in picked["candidates"]}
    assert eligible[("authors", 10)] is False and eligible[("default", 0)] is True


def test_candidates_are_compared_on_the_seeds_mle_has():
    rows = _rows({
        ("mle", 0): [(0, 75.0, 9.0, 0.55)],
        ("default", 10): [(0, 75.0, 5.0, 0.50), (1, 70.0, 5.0, 0.40)],  # seed 1: no MLE
    })  # fmt: skip
    assert tradeoff.choose(rows)["candidates"] == []
    rows[("mle", 0)].append({"seed": 1, "acc": 71.0, "ece": 9.0, "nll": 0.55, "n_samples": 0})
    chosen = tradeoff.choose(rows)["chosen"]
    assert chosen["seeds"] == [0, 1] and chosen["acc"] == pytest.approx(72.5)


def test_the_product_default_is_chosen_everywhere_or_by_rank_sums():
    def choice(*eligible_by_nll, chosen=None):
        cands = [{"setting": s, "n": 10, "nll": 0.4 + i / 100, "eligible": True}
                 for i, s in enumerate(eligible_by_nll)]  # fmt: skip
        return {"candidates": cands, "chosen": cands[0] if cands else chosen}

    same = {"mrpc": choice("a", "b"), "rte-qa": choice("a", "c")}
    assert tradeoff.product_default(same) == "a"
    # the tasks choose a and b; rank sums a 1+3, b 2+1, c 3+2: b
    split = {"mrpc": choice("a", "b", "c"), "rte-qa": choice("b", "c", "a")}
    assert tradeoff.product_default(split) == "b"
    assert tradeoff.product_default({"mrpc": choice("a"), "rte-qa": choice("b")}) is None


def test_finalists_are_near_in_nll_and_within_1_5_points_of_the_accuracy_bar():
    # MLE 75: the bar is 74, so rule 4 keeps candidates down to 72.5 (not to 73.5)
    rows = _rows({
        ("mle", 0): [(0, 75.0, 9.0, 0.55)],
        ("default", 10): [(0, 74.5, 5.0, 0.500)],  # chosen
        ("beta-1", 10): [(0, 73.0, 4.0, 0.505)],  # 1 below the bar, 0.005 nats: a finalist
        ("clock-1", 10): [(0, 72.4, 3.0, 0.490)],  # 1.6 below the bar: not one
        ("authors", 0): [(0, 75.0, 6.0, 0.511)],  # 0.011 nats above the chosen: not one
        ("beta-0.5", 10): [(0, 73.0, 4.0, 0.480)],  # ineligible, 0.02 nats below: not one
    })  # fmt: skip
    assert tradeoff.finalists("mrpc", rows) == ["mle", "ts", "beta-1", "default"]


def test_every_planned_run_is_a_valid_config_on_the_dev_carve(monkeypatch):
    monkeypatch.setattr(tradeoff, "budget", lambda task: 1000)
    for task, settings in tradeoff.TASK_SETTINGS.items():
        for name in ("mle", "ts", *settings, f"{tradeoff.TS_ON}default"):
            cmd = tradeoff.command(task, name, seed=1)
            sets = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"]
            cfg = load_run_config(None, sets)
            assert cfg.seed == 1 and cfg.calib_fraction == 0.2 and '"dev": 0.2' in cfg.dataset
            if name == "ts" or name.startswith(tradeoff.TS_ON):
                assert cfg.max_steps == 0 and cfg.init_from
            else:
                assert cfg.max_steps == 1000
    sigma_only = load_run_config(
        None,
        [c for i, c in enumerate(tradeoff.command("mrpc", "sigma-only", 0)) if i and
         tradeoff.command("mrpc", "sigma-only", 0)[i - 1] == "--set"],
    )  # fmt: skip
    assert sigma_only.kl_on_means is False and sigma_only.method == "blob"


def test_no_default_is_named_until_every_seed_the_rule_needs_has_run(monkeypatch):
    monkeypatch.setattr(tradeoff, "TASK_SETTINGS", {"mrpc": ("default", "authors")})
    table = {
        ("mle", 0): [(0, 75.0, 9.0, 0.55)],
        ("ts", 0): [(0, 75.0, 3.0, 0.50)],
        ("default", 10): [(0, 75.0, 6.0, 0.500)],
    }
    monkeypatch.setattr(tradeoff, "results", lambda task: _rows(table))
    assert tradeoff.pending() == ["mrpc seed 0 of authors"]
    table[("authors", 10)] = [(0, 72.0, 4.0, 0.495)]  # ineligible: 3 points below MLE
    # default is chosen on seed 0; it and MLE and TS need seeds 1-2
    assert tradeoff.finalists("mrpc") == ["mle", "ts", "default"]
    assert tradeoff.pending() == [
        "mrpc mle seed 1, mle seed 2, ts seed 1, ts seed 2, default seed 1, default seed 2"
    ]
    for name in ("mle", "ts", "default"):
        n = 10 if name == "default" else 0
        table[(name, n)] += [(1, 75.0, 6.0, 0.5), (2, 75.0, 6.0, 0.5)]
    # then BLoB + T of the final choice, on all three seeds
    assert tradeoff.pending() == [
        "mrpc blob-ts-default seed 0, blob-ts-default seed 1, blob-ts-default seed 2"
    ]
    table[("blob-ts-default", 10)] = [(s, 75.0, 3.0, 0.49) for s in (0, 1, 2)]
    assert tradeoff.pending() == []


def test_the_three_seed_means_can_overturn_the_seed_0_choice(monkeypatch):
    monkeypatch.setattr(
        tradeoff, "TASK_SETTINGS", {"mrpc": ("default", "beta-1", "authors", "clock-1")}
    )
    table = {
        ("mle", 0): [(0, 75.0, 9.0, 0.55), (1, 75.0, 9.0, 0.55), (2, 75.0, 9.0, 0.55)],
        ("ts", 0): [(s, 75.0, 3.0, 0.50) for s in (0, 1, 2)],
        # seed 0 chooses default; over three seeds default averages 0.530 and beta-1 0.520
        ("default", 10): [(0, 75.0, 6.0, 0.500), (1, 75.0, 6.0, 0.545), (2, 75.0, 6.0, 0.545)],
        ("beta-1", 10): [(0, 75.0, 6.0, 0.509), (1, 75.0, 6.0, 0.5255), (2, 75.0, 6.0, 0.5255)],
        # not a finalist: on seed 0 alone 0.515 beats both three-seed means, but the rule's
        # second pass compares the finalists' three-seed means only
        ("authors", 10): [(0, 75.0, 6.0, 0.515)],
        # not a finalist either (0.02 above on seed 0), though it has all three seeds here
        ("clock-1", 10): [(0, 75.0, 6.0, 0.52), (1, 75.0, 6.0, 0.40), (2, 75.0, 6.0, 0.40)],
    }
    monkeypatch.setattr(tradeoff, "results", lambda task: _rows(table))
    rows = _rows(table)
    assert tradeoff.finalists("mrpc", rows) == ["mle", "ts", "beta-1", "default"]
    final = tradeoff.decision("mrpc", rows)
    assert final["final"] and final["seeds"] == [0, 1, 2]
    assert (final["chosen"]["setting"], final["chosen"]["seeds"]) == ("beta-1", [0, 1, 2])
    assert tradeoff.pending() == [
        "mrpc blob-ts-beta-1 seed 0, blob-ts-beta-1 seed 1, blob-ts-beta-1 seed 2"
    ]


def test_run_waits_for_seed_0_and_runs_blob_ts_of_the_final_choice_from_its_own_runs(
    monkeypatch,
):
    monkeypatch.setattr(tradeoff, "TASK_SETTINGS", {"mrpc": ("default", "authors")})
    table = {
        ("mle", 0): [(0, 75.0, 9.0, 0.55)],
        ("ts", 0): [(0, 75.0, 3.0, 0.50)],
        ("default", 10): [(0, 75.0, 6.0, 0.500)],
    }
    calls = []
    monkeypatch.setattr(tradeoff, "results", lambda task: _rows(table))
    monkeypatch.setattr(tradeoff, "run_once", lambda label, *a, **k: calls.append(label) or True)
    args = argparse.Namespace(tasks=["mrpc"], seeds=[1, 2], only=None)
    # authors' seed 0 is missing: no seed 1 or 2 runs, and no blob-ts (nothing is final)
    assert tradeoff.cmd_run(args) == 0 and calls == []
    table[("authors", 10)] = [(0, 70.0, 6.0, 0.60)]
    for name, n in (("mle", 0), ("ts", 0), ("default", 10)):
        table[(name, n)] += [(1, 75.0, 6.0, 0.5), (2, 75.0, 6.0, 0.5)]
    assert tradeoff.cmd_run(args) == 0
    seeds_1_2 = [f"tradeoff mrpc {n} seed {s}" for s in (1, 2) for n in ("mle", "ts", "default")]
    with_t = [f"tradeoff mrpc {n} seed {s}" for s in (0, 1, 2)
              for n in ("default", "blob-ts-default")]  # fmt: skip
    assert calls == seeds_1_2 + with_t


def test_only_runs_the_named_runs_and_the_rule_still_waits_for_the_rest(monkeypatch):
    """A budget cut: --only mle ts default runs those three of seed 0, and no choice is
    made while the other settings' seed 0 is missing."""
    monkeypatch.setattr(tradeoff, "TASK_SETTINGS", {"mrpc": ("default", "authors", "beta-0.5")})
    table: dict = {}
    calls = []

    def run_once(label, *args, **kwargs):
        calls.append(label)
        name = label.split()[2]
        table[(name, 0 if name in ("mle", "ts") else 10)] = [(0, 75.0, 6.0, 0.5)]
        return True

    monkeypatch.setattr(tradeoff, "results", lambda task: _rows(table))
    monkeypatch.setattr(tradeoff, "run_once", run_once)
    args = argparse.Namespace(tasks=["mrpc"], seeds=[0, 1, 2], only=["mle", "ts", "default"])
    assert tradeoff.cmd_run(args) == 0
    assert calls == [f"tradeoff mrpc {n} seed 0" for n in ("mle", "ts", "default")]
    assert not tradeoff.decision("mrpc", _rows(table))["final"]
    assert tradeoff.pending() == ["mrpc seed 0 of authors, beta-0.5"]


def test_nothing_eligible_on_seed_0_needs_no_more_seeds(monkeypatch):
    monkeypatch.setattr(tradeoff, "TASK_SETTINGS", {"mrpc": ("clock-1",)})
    table = {
        ("mle", 0): [(0, 75.0, 9.0, 0.55)],
        ("ts", 0): [(0, 75.0, 3.0, 0.50)],
        ("clock-1", 10): [(0, 72.0, 4.0, 0.54)],
    }
    monkeypatch.setattr(tradeoff, "results", lambda task: _rows(table))
    assert tradeoff.finalists("mrpc") == [] and tradeoff.pending() == []
    rows = _rows(table)
    assert tradeoff.decision("mrpc", rows) == tradeoff.choose(rows) | {"final": True, "seeds": [0]}


def test_a_tie_in_rank_sums_goes_to_the_lower_nll():
    def cand(setting, nll):
        return {"setting": setting, "n": 10, "nll": nll, "eligible": True}

    # ranks: a 1 + 3 = 4, b 3 + 1 = 4, c 2 + 2 = 4; NLL sums: a 0.91, b 0.89, c 0.92
    mrpc = [cand("a", 0.40), cand("c", 0.41), cand("b", 0.42)]
    rte = [cand("b", 0.47), cand("c", 0.51), cand("a", 0.50 + 0.01)]
    choices = {"mrpc": {"candidates": mrpc, "chosen": mrpc[0]},
               "rte-qa": {"candidates": rte, "chosen": rte[0]}}  # fmt: skip
    assert tradeoff.product_default(choices) == "b"


def test_the_report_marks_a_task_chosen_once_its_own_runs_are_in(monkeypatch, tmp_path):
    """One task final and one still waiting: the first says chosen, the second leads so
    far, and no product default is named."""
    monkeypatch.setattr(tradeoff, "TASK_SETTINGS", {"mrpc": ("default",), "rte-qa": ("default",)})
    monkeypatch.setattr(tradeoff, "RESULTS", tmp_path)
    monkeypatch.setattr(tradeoff, "PLOT", tmp_path / "tradeoff.png")
    monkeypatch.setattr(tradeoff, "budget", lambda task: 100)
    three = {
        ("mle", 0): [(s, 75.0, 9.0, 0.55) for s in (0, 1, 2)],
        ("ts", 0): [(s, 75.0, 3.0, 0.50) for s in (0, 1, 2)],
        ("default", 10): [(s, 75.0, 6.0, 0.50) for s in (0, 1, 2)],
        ("blob-ts-default", 10): [(s, 75.0, 3.0, 0.49) for s in (0, 1, 2)],
    }
    seed0 = {k: v[:1] for k, v in three.items() if k[0] != "blob-ts-default"}
    tables = {"mrpc": three, "rte-qa": seed0}

    def results(task):
        rows = _rows(tables[task])
        for seed, r in enumerate(rows[("default", 10)]):  # the posterior, read before ECE
            r |= {
                "sigma_ratio_median": 2.0 + seed,
                "mean_mi": 0.01 * (seed + 1),
                "majority_acc": 68.0,
            }
        return rows

    monkeypatch.setattr(tradeoff, "results", results)
    assert tradeoff.cmd_report(argparse.Namespace()) == 0
    md = (tmp_path / "tradeoff.md").read_text()
    mrpc, rte = md.split("## rte-qa")
    assert (
        "| default **(chosen)** | 10 | 0,1,2 | 75.00 | 6.00 | 0.5000 | yes | 3.00 | 0.0200 |"
        in mrpc
    )
    assert (
        "leads so far" not in mrpc
        and "| mle (baseline) | 0 | 0,1,2 | 75.00 | 9.00 | 0.5500 | – | – | – |" in mrpc
    )
    assert "Majority class of the dev rows: 68.00 %." in mrpc
    assert "| default (leads so far) | 10 | 0 |" in rte and "(chosen)" not in rte
    assert "not chosen yet: the rule still needs rte-qa mle seed 1" in md


def test_the_report_sums_the_machine_time_of_the_timed_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(tradeoff, "out_dir", lambda task, name, seed: tmp_path / f"{name}-s{seed}")
    for name, wall_s in (("mle", 3600.0), ("default", 7200.0), ("ts", None)):
        out = tmp_path / f"{name}-s0"
        out.mkdir()
        (out / "results-final.json").write_text("[]")
        if wall_s:
            cost = {"wall_s": wall_s, "threads": 1, "cores": 2}
            (out / "machine_time.json").write_text(json.dumps(cost))
    line = tradeoff._cost_lines("mrpc")[-1]
    assert line.startswith("Machine time of the 2 of 3 finished runs that were timed")
    assert ": 1.50 h of the whole machine" in line  # (1 h + 2 h) x 1 thread / 2 cores
    (tmp_path / "default-s0" / "machine_time.json").unlink()
    (tmp_path / "mle-s0" / "machine_time.json").unlink()
    assert tradeoff._cost_lines("mrpc") == []
