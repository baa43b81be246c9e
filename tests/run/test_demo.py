import json
import subprocess
import sys

from blob_lora.run import demo
from blob_lora.run.demo import demo_config, last_step, progress_line, reading, watch


def _rows(mle_acc=80.0, ratio=0.8, sigma=0.03, n0_nll=0.46, n10_nll=0.45, mi=0.05):
    common = {"dataset": "mrpc", "seed": 0, "majority_acc": 68.0}
    return [
        {**common, "method": "mle", "n_samples": 0, "acc": mle_acc, "ece": 9.0, "nll": 0.5},
        *(
            {**common, "method": "blob", "n_samples": n, "acc": 81.0, "ece": 6.0, "nll": nll,
             "sigma_mean": sigma, "sigma_ratio_median": ratio, **({"mean_mi": mi} if n else {})}
            for n, nll in ((0, n0_nll), (10, n10_nll))
        ),
    ]  # fmt: skip


def _spread(width, stable=1):
    """What demo_spread.json holds: every comparison's seed spread, and how many held."""
    spread = {demo.comparison_key(label, metric): width for label, metric, *_ in demo.COMPARISONS}
    return {"task": "trec", "steps": 800, "stable": stable, "spread": spread}


def test_the_reading_calls_only_differences_beyond_the_seed_spread():
    narrow = "\n".join(reading(_rows(), _spread(0.005)))
    assert "+12.0 points" in narrow and "formed." in narrow
    assert "BLoB N=10 vs MLE: ECE 6.00 vs 9.00: better, beyond the seed spread (0.01)" in narrow
    assert "BLoB N=10 vs MLE: NLL 0.450 vs 0.500: better, beyond the seed spread" in narrow
    assert "BLoB N=10 vs MLE: ACC 81.00 vs 80.00: better, beyond" in narrow
    assert "BLoB N=10 vs N=0: NLL 0.450 vs 0.460: better, beyond" in narrow
    wide = "\n".join(reading(_rows(), _spread(3.0)))
    assert "ECE 6.00 vs 9.00: worse" not in wide and "better" not in wide
    assert wide.count("within the seed spread") == 4
    # without a measured spread nothing is called, and the reading says why
    unmeasured = "\n".join(reading(_rows()))
    assert "better" not in unmeasured and "worse" not in unmeasured
    assert "No seed spread is measured for this task and budget" in unmeasured
    assert "no difference between BLoB and MLE held" not in wide
    none_held = "\n".join(reading(_rows(), _spread(3.0, stable=0)))
    assert "no difference between BLoB and MLE held across the three seeds" in none_held
    worse = "\n".join(reading(_rows(mle_acc=85.0), _spread(0.5)))
    assert "ACC 81.00 vs 85.00: worse, beyond the seed spread (0.50)" in worse


def test_the_reading_says_whether_the_samples_reach_the_predictions():
    assert "disagree enough to move the predictions" in "\n".join(reading(_rows(mi=0.05)))
    low = "\n".join(reading(_rows(mi=0.002)))
    assert "0.0020 nats: below 0.01 nats, the samples barely disagree" in low


def test_the_reading_names_a_model_that_did_not_learn_and_a_posterior_that_did_not_help():
    text = "\n".join(reading(_rows(mle_acc=70.0, sigma=0.002, n0_nll=0.45), _spread(0.001)))
    assert "barely learned" in text and "not formed" in text
    assert "BLoB N=10 vs N=0: NLL 0.450 vs 0.450: within the seed spread" in text
    assert "collapsed" in "\n".join(reading(_rows(ratio=30.0)))


def test_the_spread_is_used_only_for_the_task_and_budget_it_was_measured_on(tmp_path, monkeypatch):
    path = tmp_path / "demo_spread.json"
    path.write_text(json.dumps(_spread(0.4)))
    monkeypatch.setattr(demo, "SPREAD_FILE", path)
    assert demo.load_spread("trec", 800) == _spread(0.4)
    assert demo.load_spread("trec", 600) is None and demo.load_spread("mrpc", 800) is None
    monkeypatch.setattr(demo, "SPREAD_FILE", tmp_path / "absent.json")
    assert demo.load_spread("trec", 800) is None


def test_the_demo_runs_mle_and_blob_with_the_same_settings(tmp_path):
    mle, blob = (demo_config(m, tmp_path, "mrpc", 600, 0) for m in ("mle", "blob"))
    assert {
        k: v for k, v in mle.to_dict().items() if k not in ("method", "output_dir", "eval_samples")
    } == {
        k: v for k, v in blob.to_dict().items() if k not in ("method", "output_dir", "eval_samples")
    }
    assert blob.eval_samples == [0, 10] and blob.kl_plan == "budget"


def test_progress_shows_where_each_run_is(tmp_path, capsys):
    mle, blob = (demo_config(m, tmp_path, "mrpc", 600, 0) for m in ("mle", "blob"))
    assert progress_line([mle, blob], 5) == "MLE 0/600 steps | BLoB 0/600 steps | 0:05"
    (tmp_path / "mle").mkdir()
    (tmp_path / "blob").mkdir()
    lines = [json.dumps({"step": k, "nll": 0.5}) for k in (1, 2, 240)]
    (tmp_path / "mle" / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "blob" / "metrics.jsonl").write_text(json.dumps({"step": 600}) + '\n{"st')
    assert last_step(tmp_path / "mle") == 240 and last_step(tmp_path / "blob") == 600
    assert progress_line([mle, blob], 112) == "MLE 240/600 steps | BLoB evaluating | 1:52"
    # while the runs go on, not on a terminal: a line every 30 s (and none before)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    watch([proc], [mle, blob], every=0.05)
    assert proc.returncode == 0 and capsys.readouterr().out == ""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    watch([proc], [mle, blob], every=0.05, log_every=0.1)
    shown = capsys.readouterr().out.splitlines()
    assert shown and all(
        line.startswith("MLE 240/600 steps | BLoB evaluating | 0:0") for line in shown
    )
