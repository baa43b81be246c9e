"""The demo check's pre-declared rule: stability across seeds, and the choice."""

import pytest

from experiments import demo_check


def _seed(mle, blob0, blob10):
    """(acc, ece, nll) per side -> one seed's rows."""
    keys = ("acc", "ece", "nll")
    return {side: dict(zip(keys, v, strict=True)) for side, v in
            (("mle", mle), ("blob0", blob0), ("blob10", blob10))}  # fmt: skip


def _by_key(comps):
    return {c["comparison"]: c for c in comps}


def test_a_comparison_is_stable_only_with_one_sign_on_every_seed_beyond_the_spread():
    seeds = [
        _seed((75.0, 9.0, 0.55), (75.0, 7.0, 0.50), (75.5, 5.0, 0.48)),
        _seed((76.0, 9.5, 0.56), (75.0, 7.0, 0.51), (75.0, 5.5, 0.49)),
        _seed((75.5, 10.0, 0.54), (76.0, 7.0, 0.50), (76.0, 5.2, 0.47)),
    ]
    comps = _by_key(demo_check.compare(seeds))
    ece = comps["ece: BLoB N=10 vs MLE"]
    assert ece["diffs"] == pytest.approx([-4.0, -4.0, -4.8])
    assert ece["spread"] == pytest.approx(1.0)  # MLE's 9.0-10.0 is wider than BLoB's 5.0-5.5
    assert ece["stable"] and ece["in_blob_favour"]
    acc = comps["acc: BLoB N=10 vs MLE"]
    assert not acc["stable"]  # +0.5, -1.0, +0.5: the sign changes
    nll = comps["nll: BLoB N=10 vs N=0"]
    assert nll["diffs"] == pytest.approx([-0.02, -0.02, -0.03])
    # N=10's NLL spans 0.47-0.49 and N=0's 0.50-0.51: the mean 0.0233 exceeds 0.02
    assert nll["spread"] == pytest.approx(0.02) and nll["stable"]
    seeds[2]["blob10"]["nll"] = 0.45  # one sign still, but the spread grows to 0.04 > 0.03
    nll = _by_key(demo_check.compare(seeds))["nll: BLoB N=10 vs N=0"]
    assert nll["spread"] == pytest.approx(0.04) and not nll["stable"]


def test_the_choice_prefers_stable_gains_then_fewer_steps_and_drops_unlearned_tasks():
    rows = [
        {"candidate": "a-800", "steps": 800, "usable": True, "stable": 2, "favourable": 1,
         "mle_margin": 7.0},
        {"candidate": "a-1000", "steps": 1000, "usable": True, "stable": 2, "favourable": 2,
         "mle_margin": 8.0},
        {"candidate": "b-800", "steps": 800, "usable": False, "stable": 4, "favourable": 4,
         "mle_margin": 2.0},
    ]  # fmt: skip
    assert demo_check.choose(rows)["candidate"] == "a-1000"
    rows[1]["favourable"] = 1
    assert demo_check.choose(rows)["candidate"] == "a-800"  # a tie: the fewer steps
    for r in rows:
        r["stable"] = r["favourable"] = 0
    assert demo_check.choose(rows)["candidate"] == "a-1000"  # nothing stable: largest margin
    assert demo_check.choose([rows[2]]) is None
