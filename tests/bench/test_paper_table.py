"""The paper-table driver: what it runs for each method, and the tables it writes."""

import json
import os
import signal
import sys
import threading
import time

import pytest
import torch
from safetensors.torch import save_file

from bench import paper_table, table_collect, table_plan, table_report, table_run, table_status
from blob_lora.metrics import accuracy, auroc, ece, nll, reliability_bins
from blob_lora.run.config_file import load_run_config


@pytest.fixture
def tier(tmp_path, monkeypatch):
    cfg = tmp_path / "tier.yaml"
    cfg.write_text(
        """
model_label: Tiny
settings: {model: minilm, max_steps: 7, batch_size: 4, adapter: {r: 4, alpha: 4}}
tasks:
  rte: {dataset: rte, ood: mrpc}
  boolq:
    dataset: {name: boolq, resplit: {eval_fraction: 0.3}}
    eval_datasets: [rte]
    seeds: [1]
    settings: {eval_limit: 5}
"""
    )
    monkeypatch.setattr(table_plan, "TIERS", {"tiny": cfg})
    monkeypatch.setattr(table_plan, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(table_plan, "RECORDS", tmp_path / "records")
    monkeypatch.setattr(table_run, "ROOT", tmp_path)  # run folders are printed relative to it
    monkeypatch.setattr(table_report, "RESULTS", tmp_path / "results")
    return tmp_path


def _overrides(cmd):
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"]


def test_commands_are_valid_run_configs_and_post_hoc_methods_start_from_their_source(tier):
    sources = {"la": "mle", "tfb": "mle", "ts": "mle", "blob-ts": "blob"}
    for method in paper_table.methods():
        run = paper_table.Run("tiny", "boolq", method, 1)
        cmd = paper_table.command(run)
        cfg = load_run_config(None, _overrides(cmd))  # every override is a known key
        assert cfg.method == method and cfg.seed == 1 and cfg.adapter.r == 4
        assert json.loads(cfg.dataset)["resplit"] == {"eval_fraction": 0.3}
        assert cfg.eval_samples == paper_table.eval_samples(method)
        if method in sources:
            assert cfg.max_steps == 0
            assert cfg.init_from == str(paper_table.Run("tiny", "boolq", sources[method], 1).out)
        else:
            assert cfg.max_steps == 7 and cfg.init_from is None
        assert "--resume" not in cmd
    run = paper_table.Run("tiny", "rte", "blob", 0)
    assert load_run_config(None, _overrides(paper_table.command(run))).eval_datasets == ["mrpc"]
    run.out.mkdir(parents=True)
    (run.out / "run_config.json").write_text("{}")
    assert paper_table.command(run)[-1] == "--resume"


@pytest.mark.parametrize("name", sorted(table_plan.TIERS))
def test_every_committed_tier_gives_valid_run_configs(name):
    """A typo or a conflicting key in a configs/table-*.yaml fails here, not an hour into a run."""
    spec = table_plan.load_tier(name)
    for task in spec["tasks"]:
        settings = table_plan.task_settings(spec, task)
        for method in paper_table.methods():
            cmd = paper_table.command(paper_table.Run(name, task, method, 0))
            cfg = load_run_config(None, _overrides(cmd))
            assert cfg.method == method
            assert cfg.kl_plan == settings.get("kl_plan", cfg.kl_plan)


def test_plan_honours_per_task_seeds_and_settings(tier):
    runs = paper_table.plan(["tiny"], [0, 1, 2], ["mle", "blob"], None)
    seeds = {task: sorted({r.seed for r in runs if r.task == task}) for task in ("rte", "boolq")}
    assert seeds == {"rte": [0, 1, 2], "boolq": [1]}
    assert [r.method for r in runs if r.task == "boolq"] == ["mle", "blob"]
    ordered = paper_table.plan(["tiny"], [1], ["mle"], ["boolq", "rte"])
    assert [r.task for r in ordered] == ["boolq", "rte"]  # --tasks sets the order
    limits = {
        r.task: load_run_config(None, _overrides(paper_table.command(r))).eval_limit for r in runs
    }
    assert limits == {"rte": None, "boolq": 5}


def test_method_seeds_run_a_method_on_fewer_seeds(tier):
    """A tier's `method_seeds` (the budget's way to fit) leaves those runs out of the plan,
    and so out of `run` and the status projection, for that method only."""
    spec = table_plan.TIERS["tiny"]
    spec.write_text(spec.read_text() + "method_seeds: {blob: [0, 1]}\n")
    runs = paper_table.plan(["tiny"], [0, 1, 2], ["mle", "blob"], ["rte"])
    assert [(r.method, r.seed) for r in runs] == [
        ("mle", 0), ("blob", 0), ("mle", 1), ("blob", 1), ("mle", 2)
    ]  # fmt: skip
    # a command whose seeds the tier leaves out says so, not just "0 of 0 runs"
    assert paper_table.plan(["tiny"], [2], ["blob"], None) == []
    assert table_plan.left_out(["tiny"], [2], ["blob"], None) == [
        "tier tiny runs blob on seeds 0, 1 only (method_seeds in tier.yaml): seed 2 left out"
    ]
    assert table_plan.left_out(["tiny"], [0, 1], ["blob", "mle"], None) == []
    assert table_plan.left_out(["tiny"], [2, 3], ["blob"], ["rte"])[0].endswith(
        "seeds 2, 3 left out"
    )
    assert table_plan.left_out(["tiny"], [2], ["blob"], ["other"]) == []  # not this tier's task
    assert table_plan.left_out(["tiny"], [2], ["mle"], None) == []


def _fake_run(run, rows, preds):
    run.out.mkdir(parents=True, exist_ok=True)
    config = load_run_config(None, _overrides(paper_table.command(run)))
    (run.out / "run_config.json").write_text(json.dumps(config.to_dict()))
    (run.out / "results-final.json").write_text(json.dumps(rows))
    (run.out / "machine_time.json").write_text(
        '{"wall_s": 720, "jobs": 2, "threads": 1, "cores": 2}'
    )
    pred_dir = run.out / "predictions"
    pred_dir.mkdir(exist_ok=True)
    for name, tensors in preds.items():
        save_file(tensors, str(pred_dir / name))


def test_report_tables_means_and_ood_detection(tier, capsys):
    gen = torch.Generator().manual_seed(0)
    for seed, acc in [(0, 60.0), (1, 70.0)]:
        for method, ns in [("mle", [0]), ("blob", [0, 10])]:
            run = paper_table.Run("tiny", "rte", method, seed)
            rows, preds = [], {}
            for n in ns:
                for ds in ("rte", "mrpc"):
                    rows.append(
                        {
                            "model": "minilm",
                            "dataset": ds,
                            "method": method,
                            "n_samples": n,
                            "seed": seed,
                            "steps": 7,
                            "acc": acc + n,
                            "ece": 5.0,
                            "nll": 0.6,
                            "brier": 0.4,
                            "majority_acc": 52.0 + seed,
                            **(
                                {"sigma_mean": 0.03, "sigma_ratio_median": 0.5 + seed}
                                if method == "blob"
                                else {}
                            ),
                        }  # fmt: skip
                    )
                    sharp = 8.0 if ds == "rte" else 1.0  # OOD inputs: flatter predictions
                    probs = torch.softmax(sharp * torch.randn(20, 2, generator=gen), -1)
                    mi = torch.rand(20, generator=gen) * (0.1 if ds == "rte" else 1.0)
                    preds[f"final-{ds}-N{n}.safetensors"] = {
                        "probs": probs, "labels": torch.zeros(20, dtype=torch.long),
                        "mutual_information": mi,
                    }  # fmt: skip
            _fake_run(run, rows, preds)
    assert paper_table.main(["report", "--tiers", "tiny"]) == 0
    md = (tier / "results" / "paper_table.md").read_text()
    assert "| ACC (%) ↑ | mle | 65.00 ± 7.07 (2) |" in md
    assert "| ACC (%) ↑ | blob (N=10) | 75.00 ± 7.07 (2) |" in md
    assert "Machine time of the finished runs of this tier: 0.40 h" in md  # 4 x 720 s x 1/2
    assert (
        f"runs measured on {table_report.provenance()['machine']} (6 runs)" in md
    )  # MAP relabelled included
    # the majority class beside the methods, and the posterior before the calibration
    assert "| ACC (%) ↑ | majority class | 52.50 ± 0.71 (2) |" in md
    assert "| median σ/\\|μ\\| | blob (N=10) | 1.000 ± 0.707 (2) |" in md
    assert "| mean σ | mle |" not in md
    assert "| mean σ | blob (N=0) |" not in md  # a run's posterior once, at its table N
    png = tier / "results" / "paper_table_tiny.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "(paper_table_tiny.png)" in md
    # MAP at the default lr 5e-4 is the MLE run relabelled (its decay rounds away in fp32)
    assert "| ACC (%) ↑ | map | 65.00 ± 7.07 (2) |" in md
    # the claims: equal ECE/NLL tie at rank 1 of 3; N=10 is 10 points above MLE, which is
    # no failure (the claim asks for at most 1 point below); no ts run: no TS comparison
    assert "| rte | rte | 1/3 | 1/3 | +10.00 | agrees | 1/3 | agrees |  | – | – | 0, 1 |" in md
    # a task's `ood` set, labelled, gets its calibration grid and claim (3) as well
    assert "### Out of distribution: trained on rte, evaluated unchanged" in md
    ood = md.split("### Out of distribution: trained on rte")[1].split("###")[0]
    assert "| metric | method | mrpc |" in ood and "| ACC (%) ↑ | mle | 65.00 ± 7.07 (2) |" in ood
    assert "| rte | mrpc | 1/3 | 1/3 | +10.00 | agrees | 1/3 | agrees | agrees |" in md
    table = json.loads((tier / "results" / "paper_table.json").read_text())
    assert len(table) == 2 * (2 + 2 + 4)
    # each record keeps the resolved settings its run trained with
    record = json.loads(paper_table.Run("tiny", "rte", "blob", 1).record.read_text())
    assert record["run_config"]["method"] == "blob" and record["run_config"]["seed"] == 1
    assert {r["trained_on"] for r in table} == {"rte"}
    assert all("majority_acc" in r for r in table)
    assert all(("sigma_mean" in r) == (r["method"] == "blob") for r in table)
    detection = json.loads((tier / "results" / "paper_table_ood_detection.json").read_text())
    blob10 = [d for d in detection if d["method"] == "blob" and d["n_samples"] == 10]
    assert len(blob10) == 2 and all(d["auroc_entropy"] > 0.8 for d in blob10)
    # the AUROC is the one of the saved predictions, recomputed here independently
    from safetensors.torch import load_file

    out = paper_table.Run("tiny", "rte", "blob", 0).out / "predictions"
    a, b = (load_file(str(out / f"final-{d}-N10.safetensors")) for d in ("rte", "mrpc"))
    expect = auroc(a["mutual_information"].numpy(), b["mutual_information"].numpy())
    row = next(d for d in blob10 if d["seed"] == 0)
    assert row["auroc_mutual_information"] == pytest.approx(expect)
    assert "auroc_mutual_information" not in next(d for d in detection if d["n_samples"] == 0)
    # the fake rows' ECE is not their predictions': no bins, rather than bins of other data
    records = [json.loads(f.read_text()) for f in (tier / "records").rglob("*.json")]
    assert len(records) == 6 and all(
        r["reliability"] is None for rec in records for r in rec["rows"]
    )
    assert not (tier / "results" / "paper_table_tiny_reliability.png").exists()
    # a new session has no runs/: the committed records give the same report
    import shutil

    shutil.rmtree(tier / "runs")
    assert paper_table.main(["report", "--tiers", "tiny"]) == 0
    assert (tier / "results" / "paper_table.md").read_text() == md
    assert json.loads((tier / "results" / "paper_table.json").read_text()) == table


def _consistent_run(run, gen, sharpness):
    """A finished fake run whose result rows are computed from the predictions it saved."""
    probs = torch.softmax(sharpness * torch.randn(40, 2, generator=gen), -1)
    labels = torch.randint(0, 2, (40,), generator=gen)
    p, y = probs.double().numpy(), labels.numpy()
    row = {"model": "minilm", "dataset": "rte", "method": run.method, "n_samples": 0,
           "seed": run.seed, "steps": 7, "acc": 100 * accuracy(p, y), "ece": 100 * ece(p, y),
           "nll": nll(p, y), "majority_acc": 50.0}  # fmt: skip
    preds = {"probs": probs, "labels": labels, "mutual_information": torch.zeros(40)}
    _fake_run(run, [row], {"final-rte-N0.safetensors": preds})
    return p, y


def test_records_carry_reliability_bins_and_the_report_plots_them(tier):
    gen = torch.Generator().manual_seed(5)
    mle0, map0, mle1 = (paper_table.Run("tiny", "rte", m, s) for m, s in
                        (("mle", 0), ("map", 0), ("mle", 1)))  # fmt: skip
    p, y = _consistent_run(mle0, gen, 6.0)
    _consistent_run(mle1, gen, 2.0)
    assert paper_table.main(["report", "--tiers", "tiny"]) == 0
    old = json.loads(mle0.record.read_text())
    bins = reliability_bins(p, y)
    got = old["rows"][0]["reliability"]
    assert got["count"] == bins.count.tolist() and sum(got["count"]) == 40
    full = bins.count > 0
    assert [c for c in got["confidence"] if c is not None] == pytest.approx(
        bins.confidence[full].tolist()
    )
    assert all(c is None for c, n in zip(got["confidence"], bins.count, strict=True) if not n)
    md = (tier / "results" / "paper_table.md").read_text()
    png = tier / "results" / "paper_table_tiny_reliability.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"({png.name})" in md
    assert "(4 of the 4 result rows have their bins" in md  # mle and map, 2 seeds
    # MAP (its decay lost at this lr) is the MLE record relabelled, bins included
    assert json.loads(map0.record.read_text())["rows"][0]["reliability"] == got
    # a record written before rows had bins gets them from its run on the next report,
    # and the MAP record made from it follows
    stripped = [{k: v for k, v in r.items() if k != "reliability"} for r in old["rows"]]
    mle0.record.write_text(json.dumps(old | {"rows": stripped}))
    map0.record.write_text(json.dumps(json.loads(map0.record.read_text()) | {"rows": []}))
    assert paper_table.main(["report", "--tiers", "tiny"]) == 0
    assert json.loads(mle0.record.read_text()) == old
    assert json.loads(map0.record.read_text())["rows"][0]["reliability"] == got
    # ... but not from a run in runs/ whose results are not the record's (another budget)
    results = mle0.out / "results-final.json"
    changed = json.loads(results.read_text())
    changed[0]["acc"] += 1.0
    results.write_text(json.dumps(changed))
    os.utime(results, (1, 1))  # older than the record: the record stays the run's result
    mle0.record.write_text(json.dumps(old | {"rows": stripped}))
    assert paper_table.main(["report", "--tiers", "tiny"]) == 0
    assert "reliability" not in json.loads(mle0.record.read_text())["rows"][0]
    # a MAP record from a trained MAP run (no same_as) is never replaced by the MLE's
    trained_map = {"rows": [{**old["rows"][0], "method": "map", "acc": 1.0}], "detection": [],
                   "machine_s": 600.0, "starts": 1}  # fmt: skip
    map0.record.write_text(json.dumps(trained_map))
    assert paper_table.main(["report", "--tiers", "tiny"]) == 0
    assert json.loads(map0.record.read_text()) == trained_map


def test_map_whose_decay_rounds_away_is_the_mle_run_relabelled_not_trained(tier, monkeypatch):
    """The tiny tier trains at the default lr 5e-4: MAP's 1e-5 decay is lost in fp32."""
    mle, map_run = (paper_table.Run("tiny", "rte", m, 0) for m in ("mle", "map"))
    row = {"dataset": "rte", "method": "mle", "n_samples": 0, "seed": 0, "steps": 7, "acc": 61.0}
    _fake_run(mle, [row], {})

    def no_training(*args, **kwargs):
        raise AssertionError("MAP was trained")

    monkeypatch.setattr(table_run, "timed_run", no_training)
    assert paper_table.main(["run", "--tiers", "tiny", "--seeds", "0", "--tasks", "rte",
                             "--methods", "map"]) == 0  # fmt: skip
    record = json.loads(map_run.record.read_text())
    assert record["same_as"] == "mle" and record["machine_s"] == 0.0
    assert [r["method"] for r in record["rows"]] == ["map"] and record["rows"][0]["acc"] == 61.0
    assert map_run.done and not map_run.out.exists()


def test_post_hoc_run_retrains_mle_when_only_its_record_survived(tier, monkeypatch):
    mle, la = (paper_table.Run("tiny", "rte", m, 0) for m in ("mle", "la"))
    mle.record.parent.mkdir(parents=True)
    mle.record.write_text('{"rows": [], "detection": [], "machine_s": 1.0, "starts": 1}')
    assert mle.done and not mle.trained
    started = []

    def fake_timed_run(cmd, env, log, partial):
        run = mle if 'method="mle"' in cmd else la
        started.append(run.method)
        _fake_run(run, [], {})
        return 0, 1.0

    monkeypatch.setattr(table_run, "timed_run", fake_timed_run)
    assert paper_table.main(["run", "--tiers", "tiny", "--seeds", "0", "--tasks", "rte",
                             "--methods", "la", "--jobs", "1"]) == 0  # fmt: skip
    assert started == ["mle", "la"] and la.record.is_file()


@pytest.mark.parametrize("native", [True, False])
def test_a_bf16_tier_is_refused_on_a_cpu_that_emulates_bf16(tier, monkeypatch, capsys, native):
    """Unless told otherwise: it would train tens of times slower than in fp32."""
    spec = table_plan.TIERS["tiny"]
    spec.write_text(spec.read_text().replace("max_steps: 7", "max_steps: 7, precision: bf16"))
    monkeypatch.setattr("blob_lora.run.precision.cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(table_run, "no_accelerator", lambda: True)
    started = []

    def fake_timed_run(cmd, env, log, partial):
        started.append(cmd)
        _fake_run(paper_table.Run("tiny", "rte", "mle", 0), [], {})
        return 0, 1.0

    monkeypatch.setattr(table_run, "timed_run", fake_timed_run)
    args = ["run", "--tiers", "tiny", "--seeds", "0", "--tasks", "rte", "--methods", "mle"]
    code = paper_table.main(args)
    err = capsys.readouterr().err
    if native:
        assert code == 0 and len(started) == 1 and "error" not in err
        return
    assert code == 2 and not started
    assert "tier tiny runs precision=bf16" in err and "--allow-slow-precision" in err
    assert paper_table.main([*args, "--allow-slow-precision"]) == 0 and len(started) == 1


def test_a_record_from_an_earlier_budget_is_stale_not_reported_and_trained_again(
    tier, monkeypatch, capsys
):
    """The tier's max_steps changed from 5 to 7: the old record and run folder are not this
    table's run, so `run` trains it again (from scratch, not --resume) and rewrites them."""
    mle = paper_table.Run("tiny", "rte", "mle", 0)
    old = {"dataset": "rte", "method": "mle", "n_samples": 0, "seed": 0, "steps": 5, "acc": 1.0}
    _fake_run(mle, [old], {})
    (mle.out / "run_config.json").write_text('{"max_steps": 5}')
    table_collect.record_run(mle)
    assert mle.record.is_file() and mle.stale and not mle.done and not mle.trained
    assert table_collect.collect(["tiny"]) == ([], [])  # not reported
    monkeypatch.setattr(table_status, "ROOT", tier)
    paper_table.main(["status", "--tiers", "tiny", "--seeds", "0", "--tasks", "rte",
                      "--methods", "mle"])  # fmt: skip
    assert capsys.readouterr().out.startswith("stale")
    started = []

    def fake_timed_run(cmd, env, log, partial):
        started.append("--resume" in cmd)
        assert not mle.out.exists()  # the old folder was cleared before the start
        _fake_run(mle, [old | {"steps": 7, "acc": 61.0}], {})
        return 0, 1.0

    monkeypatch.setattr(table_run, "timed_run", fake_timed_run)
    assert paper_table.main(["run", "--tiers", "tiny", "--seeds", "0", "--tasks", "rte",
                             "--methods", "mle", "--jobs", "1"]) == 0  # fmt: skip
    assert started == [False] and mle.done and not mle.stale
    rows, _ = table_collect.collect(["tiny"])
    # (MAP is this MLE run relabelled; before, the stale record gave it nothing either)
    assert sorted((r["method"], r["acc"]) for r in rows) == [("map", 61.0), ("mle", 61.0)]


def test_a_run_another_table_command_finished_meanwhile_is_not_started_again(tier, monkeypatch):
    mle, blob = (paper_table.Run("tiny", "rte", m, 0) for m in ("mle", "blob"))
    started = []

    def fake_timed_run(cmd, env, log, partial):
        started.append("mle" if 'method="mle"' in cmd else "blob")
        row = {"dataset": "rte", "method": "mle", "n_samples": 0, "seed": 0, "steps": 7}
        _fake_run(mle, [row], {})
        # meanwhile a second `run` (other cores) finished and recorded the BLoB run
        table_collect.write_record(blob, [row | {"method": "blob"}], [], machine_s=1.0)
        return 0, 1.0

    monkeypatch.setattr(table_run, "timed_run", fake_timed_run)
    assert paper_table.main(["run", "--tiers", "tiny", "--seeds", "0", "--tasks", "rte",
                             "--methods", "mle", "blob", "--jobs", "1"]) == 0  # fmt: skip
    assert started == ["mle"] and blob.done


def test_claim_ranks_count_strictly_better_baselines_and_skip_blobs_other_n():
    means = {
        "mle": {"ece": 3.0, "acc": 70.0},
        "ens": {"ece": 1.0, "acc": 72.0},
        "la (N=10)": {"ece": 3.0, "acc": 60.0},
        "blob (N=0)": {"ece": 0.5, "acc": 71.0},
        "blob (N=10)": {"ece": 2.0, "acc": 69.0},
    }
    assert paper_table._rank(means, "blob (N=10)", "ece", low=True) == (2, 4)
    assert paper_table._rank(means, "blob (N=0)", "ece", low=True) == (1, 4)
    assert paper_table._rank(means, "blob (N=0)", "acc", low=False) == (2, 4)
    assert paper_table._rank(means, "mle", "ece", low=True) == (2, 3)  # ties share a place


def test_claims_count_ts_as_a_baseline_and_only_an_accuracy_drop_as_a_failure():
    from bench import table_report

    def rows(method, n, acc, ece, nll):
        return [{"trained_on": "t", "dataset": "t", "method": method, "n_samples": n,
                 "seed": s, "acc": acc, "ece": ece, "nll": nll} for s in (0, 1)]  # fmt: skip

    base = rows("mle", 0, 70.0, 10.0, 0.70) + rows("blob", 0, 69.0, 8.0, 0.66)
    blob = rows("blob-ts", 0, 69.0, 2.5, 0.60) + rows("blob-ts", 10, 69.5, 1.5, 0.59)
    spec = {"tasks": {"t": {"dataset": "t"}}}

    def claim(extra):
        line = table_report._claims(base + blob + extra, [], spec)[-1]
        return [c.strip() for c in line.strip("|").split("|")]

    # BLoB N=10 at 1.5 points below MLE: ECE/NLL rank 1 of 2, but the accuracy guard fails
    cells = claim(rows("blob", 10, 68.5, 4.0, 0.62))
    assert cells[2:6] == ["1/2", "1/2", "-1.50", "disagrees"]
    # 3 points above MLE is no failure; TS beats BLoB N=10 on ECE and NLL, and counts
    cells = claim(rows("blob", 10, 73.0, 4.0, 0.62) + rows("ts", 0, 70.0, 3.0, 0.61))
    assert cells[2:6] == ["2/3", "2/3", "+3.00", "agrees"]
    assert cells[9] == "+1.00, +0.010"  # BLoB N=10 minus TS
    assert cells[10] == "1/3, 1/3"  # blob-ts N=10 against mle and ts


def test_claims_rank_methods_not_their_sample_counts_and_survive_disjoint_seeds():
    from bench import table_report

    def rows(method, n, acc, ece, nll, seeds=(0, 1)):
        return [{"trained_on": "t", "dataset": "t", "method": method, "n_samples": n,
                 "seed": s, "acc": acc, "ece": ece, "nll": nll} for s in seeds]  # fmt: skip

    spec = {"tasks": {"t": {"dataset": "t"}}}
    base = rows("mle", 0, 64.01, 10.0, 0.70) + rows("blob", 0, 63.0, 8.0, 0.66)
    # bbb at N=0 and N=10, both ahead on ECE: one rival, so BLoB N=10 is 2nd of 3 (not 3/4)
    bbb = rows("bbb", 0, 70.0, 3.0, 0.80) + rows("bbb", 10, 70.0, 2.5, 0.80)
    line = table_report._claims(base + bbb + rows("blob", 10, 63.01, 4.0, 0.62), [], spec)[-1]
    cells = [c.strip() for c in line.strip("|").split("|")]
    # 63.01 - 64.01 is -1.0000000000000071 in floats: still 1 point, within the guard
    assert cells[2:6] == ["2/3", "1/3", "-1.00", "agrees"]
    # MLE on seed 0 only and BLoB on seed 1 only: no seed to compare on, no row, no crash
    apart = rows("mle", 0, 70.0, 10.0, 0.70, (0,)) + rows("blob", 0, 69.0, 8.0, 0.66, (1,))
    assert table_report._claims(apart + rows("blob", 10, 69.0, 4.0, 0.62, (1,)), [], spec) == []


def test_projection_uses_the_same_task_and_method_else_the_same_method(tier):
    done = [paper_table.Run("tiny", "rte", m, 0) for m in ("mle", "blob")]
    for run in done:
        _fake_run(run, [], {})  # 720 s wall x 1 thread / 2 cores = 360 machine-s each
    runs = done + [
        paper_table.Run("tiny", "rte", "mle", 1),  # same task and method: 360
        paper_table.Run("tiny", "boolq", "blob", 1),  # other task: the method's mean, 360
        paper_table.Run("tiny", "boolq", "ens", 1),  # nothing measured: counted apart
    ]
    assert paper_table.projected_s(runs) == (720.0, 1)


def test_cost_table_is_minutes_per_run_over_mle_and_leaves_resumed_runs_out(tier):
    run = paper_table.Run("tiny", "rte", "blob", 0)
    run.out.parent.mkdir(parents=True)
    log = run.out.parent / "blob-s0.log"
    log.write_text("Loading weights: 100%|##| 236/236\nstep 1\nLoading weights: 100%|##|\n")
    assert paper_table._starts(run) == 2  # interrupted once, resumed once
    assert paper_table._starts(paper_table.Run("tiny", "rte", "mle", 0)) == 0  # never started
    # `blob` shows no loading bar now: the runner marks each start itself, and a run begun
    # before that and resumed after counts both kinds of start once
    code, _ = table_run.timed_run(
        [sys.executable, "-c", "print('step 1')"], dict(os.environ), log, run.out / "w.json"
    )
    assert code == 0 and log.read_text().count(table_run.START_MARK) == 1
    assert paper_table._starts(run) == 3

    def row(method, seed, minutes, starts=1, dataset="rte"):
        return {
            "trained_on": "rte", "method": method, "seed": seed, "dataset": dataset,
            "machine_s": 60.0 * minutes, "starts": starts,
        }  # fmt: skip

    rows = [
        row("mle", 0, 4.0), row("mle", 0, 4.0, dataset="mrpc"), row("mle", 1, 6.0),
        row("blob", 0, 9.0), row("blob", 1, 11.0), row("blob", 2, 1.0, starts=2),
        row("la", 0, 2.5),
    ]  # fmt: skip
    lines = paper_table._cost_lines(rows, ["rte", "boolq"])
    assert "| method | rte |" in lines  # boolq has no timed run: no column
    assert "| mle | 5.0 (1.00x) |" in lines
    assert "| blob | 10.0 (2.00x) |" in lines  # the resumed seed-2 run is not averaged in
    assert "| la | 2.5 (0.50x) |" in lines
    assert not any(line.startswith("| ens") for line in lines)
    # a task timed on two machines: one column each, each ratio to its own machine's MLE
    amd = "AMD EPYC 9R14 96-Core Processor, 2 cores"
    rows = [r | {"machine": "Intel(R) Xeon(R) Processor, 2 cores"} for r in rows] + [
        row("mle", 2, 2.0) | {"machine": amd},
        row("la", 2, 3.0) | {"machine": amd},
    ]
    lines = paper_table._cost_lines(rows, ["rte"])
    assert "| method | rte (AMD EPYC) | rte (Intel Xeon) |" in lines
    assert "| la | 3.0 (1.50x) | 2.5 (0.50x) |" in lines


def test_timed_run_adds_the_time_of_interrupted_starts(tmp_path, monkeypatch):
    monkeypatch.setattr(table_run, "ROOT", tmp_path)
    log, partial = tmp_path / "run.log", tmp_path / "run.wall.json"
    # a start that is killed midway leaves its running total behind
    pid_file = tmp_path / "pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
    cmd = [sys.executable, "-c", script + "print('working', flush=True); time.sleep(30)"]
    proc = threading.Thread(
        target=paper_table.timed_run, args=(cmd, dict(os.environ), log, partial, 0.05)
    )
    proc.start()
    deadline = time.time() + 20
    while not (partial.is_file() and pid_file.is_file()) and time.time() < deadline:
        time.sleep(0.05)
    assert partial.is_file()  # the running total is on disk while the run is going
    time.sleep(0.3)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    proc.join()
    killed = json.loads(partial.read_text())["wall_s"]
    assert killed >= 0.2  # the killed start was counted
    code, took = paper_table.timed_run(
        [sys.executable, "-c", "print('done')"], dict(os.environ), log, partial, 0.05
    )
    assert code == 0 and took >= killed and not partial.exists()
    lines = log.read_text().splitlines()
    assert lines[:2] == ["[paper_table] start", "working"] and "done" in log.read_text()
    code, took = paper_table.timed_run(
        [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ), log, partial
    )
    assert code == 3 and json.loads(partial.read_text())["wall_s"] == pytest.approx(took, abs=0.1)


def test_pooled_reliability_is_the_reliability_of_the_pooled_predictions():
    gen = torch.Generator().manual_seed(3)
    probs = torch.softmax(3 * torch.randn(200, 3, generator=gen, dtype=torch.float64), -1)
    labels = torch.randint(0, 3, (200,), generator=gen)
    rows = []
    for part in (slice(0, 70), slice(70, 200)):
        bins = reliability_bins(probs[part].numpy(), labels[part].numpy())
        rows.append({"reliability": table_collect.bins_record(bins)})
    conf, acc, count = table_report.pooled_reliability(rows)
    whole = reliability_bins(probs.numpy(), labels.numpy())
    full = whole.count > 0
    assert count == whole.count[full].tolist()
    assert conf == pytest.approx(whole.confidence[full].tolist())
    assert acc == pytest.approx(whole.accuracy[full].tolist())


def test_a_diverged_rows_nan_results_still_match_their_run():
    row = {"acc": 50.0, "ece": float("nan"), "nll": float("nan")}
    assert table_collect._metrics(row) == table_collect._metrics(json.loads(json.dumps(row)))
    assert table_collect._metrics(row) != table_collect._metrics(row | {"acc": 51.0})
