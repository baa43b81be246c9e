"""Bad inputs found by trying the CLI as a new user (issue 14's closing table): each is
refused with one line naming the problem and the fix, before anything is written."""

import json

import pytest
import torch
from minilm_runs import tiny_run_config as _cfg

from blob_lora import ConfigError
from blob_lora.cli import main
from blob_lora.data.examples import TextExample
from blob_lora.optim import AdapterOptimizer
from blob_lora.run.checks import check_label_set, check_max_length
from blob_lora.run.config_file import load_run_config
from blob_lora.run.files import RunDir
from blob_lora.run.fit import TrainingDivergedError
from blob_lora.run.runner import Runner


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval_samples=[0,", "eval_samples='\\[0,' is not valid YAML/JSON"),
        ('dataset={"path": ', "dataset='{\"path\": ' is not valid YAML/JSON"),
        ("max_steps=0", "max_steps=0 trains nothing"),
        ("method_options.members=5", "unknown method_options \\['members'\\] for 'la'"),
    ],
)
def test_malformed_values_and_empty_runs_are_refused_in_the_config(override, message):
    with pytest.raises(ConfigError, match=message):
        load_run_config(None, ["method=la", override])


def test_only_a_methods_own_settings_are_options_and_an_ensemble_needs_two_members():
    with pytest.raises(
        ConfigError, match="method_options.members: Input should be greater than or equal to 2"
    ):
        load_run_config(None, ["method=ens", "method_options.members=0"])
    assert load_run_config(None, ["method=ens", "method_options.members=4"]).method_options == {
        "members": 4
    }
    for recipe in ("cost", "posterior_saved", "default_eval_samples", "name"):
        with pytest.raises(ConfigError, match="unknown method_options"):
            load_run_config(None, ["method=ens", f"method_options.{recipe}=1"])


def test_an_invalid_yaml_config_file_is_one_line_with_its_place(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("model: minilm\nlr: [1e-3\n")
    with pytest.raises(ConfigError) as err:
        load_run_config(str(bad))
    assert "line" in str(err.value) and "\n" not in str(err.value)


def test_report_refuses_unknown_metrics_and_unwritable_outputs(tmp_path, capsys):
    rows = [
        {"dataset": "mrpc", "method": "mle", "seed": 0, "n_samples": 0, "acc": 80.0, "ece": 5.0}
    ]
    results = tmp_path / "results-final.json"
    results.write_text(json.dumps(rows))
    assert main(["report", str(results), "--metrics", "accuracy"]) == 2
    assert "--metrics ['accuracy'] in none of the results rows" in capsys.readouterr().err
    assert main(["report", str(results), "--output", str(results / "t.md")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the table" in err and "Traceback" not in err
    assert main(["report", str(results), "--output", str(tmp_path / "t.md")]) == 0
    assert "80.00" in (tmp_path / "t.md").read_text()


def test_a_stray_label_is_named_by_split_and_position():
    train = [TextExample(f"t{i}", None, i % 2) for i in range(40)]
    train[17] = TextExample("t17", None, 5, id="row-17")
    with pytest.raises(ConfigError) as err:
        check_label_set('{"path": "mine.jsonl"}', {"train": train, "validation": train[:4]})
    text = str(err.value)
    assert "dataset 'mine' (mine.jsonl)" in text and "skip [2, 3, 4]" in text
    assert "train example 17 (id 'row-17')" in text


class _Task:
    """Collates to as many tokens as the text has words, cut at max_length."""

    def __init__(self, max_length):
        self.max_length = max_length

    def collate(self, examples):
        n = min(len(examples[0].text.split()), self.max_length)
        return {"attention_mask": torch.ones(1, n)}


def test_a_max_length_that_cuts_every_example_is_refused_and_one_that_fits_some_is_not():
    examples = [TextExample(" ".join(["w"] * n), None, 0) for n in (12, 30, 9)]
    with pytest.raises(ConfigError, match="max_length=8 cuts every one .* at least 9"):
        check_max_length(_Task(8), examples, 8)
    task = _Task(10)
    warning = check_max_length(task, examples, 10)  # 9 words fit; 2 of 3 are cut
    assert task.max_length == 10
    assert warning.startswith("max_length=10 cuts 2 of the first 3 training examples")
    assert check_max_length(_Task(12), examples, 12) == ""  # only one of 3 is cut


def test_a_nan_before_the_first_checkpoint_lets_the_corrected_run_start_afresh(
    tmp_path, monkeypatch, capsys
):
    real_step = AdapterOptimizer.step

    def poisoning_step(self, kl_weight):
        out = real_step(self, kl_weight)
        with torch.no_grad():
            for p in self.mean_params:
                p.fill_(float("nan"))
        return out

    monkeypatch.setattr(AdapterOptimizer, "step", poisoning_step)
    with pytest.raises(TrainingDivergedError, match="step 2 .*checkpoint is none"):
        Runner(_cfg(tmp_path, method="mle", eval_samples=[0], lr=1.0)).train()
    files = RunDir(tmp_path / "run")
    assert files.config.is_file() and not files.holds_progress()
    monkeypatch.setattr(AdapterOptimizer, "step", real_step)
    out = Runner(_cfg(tmp_path, method="mle", eval_samples=[0], max_steps=2)).train()
    assert out["steps"] == 2 and files.holds_progress()
    assert "its last start saved nothing" in capsys.readouterr().out
    assert json.loads(files.config.read_text())["lr"] == 5e-3  # the corrected config


def test_resume_continues_from_the_checkpoint_instead_of_retraining(tmp_path, monkeypatch):
    """A resume that silently retrained from step 0 would still end bitwise equal (the run
    is deterministic), so count the optimizer steps the resumed start takes."""
    real_step = AdapterOptimizer.step
    steps = {"n": 0}

    def counting_step(self, kl_weight):
        steps["n"] += 1
        if steps["n"] == 5:
            raise KeyboardInterrupt  # a kill after the step-3 checkpoint
        return real_step(self, kl_weight)

    monkeypatch.setattr(AdapterOptimizer, "step", counting_step)
    with pytest.raises(KeyboardInterrupt):
        Runner(_cfg(tmp_path, method="mle", eval_samples=[0])).train()
    steps["n"] = -100  # no interrupt this time
    Runner(_cfg(tmp_path, method="mle", eval_samples=[0])).train(resume=True)
    assert steps["n"] == -100 + 3  # steps 4..6 only
