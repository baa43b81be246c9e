"""Fuzz the command line: random flags for `blob train`, `eval`, `report` and `generate`
on tiny runs built here. Every input exits 0 or exits 2 with one `error:` line; none
leaves a traceback, a file outside the folder it may write to, or a changed earlier
result (the training run's results, predictions and adapter stay byte-identical)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fuzzing import TRICKY_TEXT, examples, values
from gen_tiny import llama_tokenizer, tiny_gemma, toy_generation_dataset
from hypothesis import event, given
from hypothesis import strategies as st
from minilm_runs import tiny_run_config

from blob_lora.cli import main
from blob_lora.run.files import RunDir
from blob_lora.run.runner import Runner


def snapshot(root: Path, skip: Path | None = None) -> dict[str, str]:
    """sha256 of every file under `root` (outside `skip`)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and (skip is None or skip not in p.parents)
    }


def check_exit(code: int, err: str) -> None:
    assert code in (0, 2), err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert not any("Traceback" in line for line in lines), err
    if code == 2:
        assert lines and lines[-1].startswith("error: "), err
        assert sum(line.startswith("error: ") for line in lines) == 1, err


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A finished tiny MiniLM run (mle, N=0) and a tiny Gemma generation run."""
    root = tmp_path_factory.mktemp("fuzz-cli")
    Runner(tiny_run_config(root, "mle", method="mle", max_steps=2, eval_samples=[0])).train()
    rows = [{"id": o, "dialogue": f"person1 wants the {o} .", "summary": f"the {o}"}
            for o in ("car", "cat", "dog")]  # fmt: skip
    dataset = toy_generation_dataset(root, rows, 2)
    tiny_gemma().save_pretrained(root / "gemma")
    llama_tokenizer().save_pretrained(root / "gemma")
    args = ["train", "--model", str(root / "gemma"), "--method", "mle", "--output-dir",
            str(root / "gen"), "--max-steps", "1", "--set", f"dataset={dataset}",
            "--set", "batch_size=4", "--set", "max_length=32", "--set", "max_new_tokens=3",
            "--set", "gen_samples=2"]  # fmt: skip
    assert main(args) == 0
    return root


def _run(capsys, monkeypatch, root: Path, argv: list[str], may_write: Path) -> int:
    """`blob argv` from inside `root`; what changed must lie under `may_write`."""
    monkeypatch.chdir(root)
    before = snapshot(root, skip=may_write)
    kept = snapshot(root / "mle", skip=None)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own refusals: `blob` exits with this code
        code = stop.code
    err = capsys.readouterr().err
    check_exit(code, err)
    event(f"{argv[0]}: exit {code}")
    assert snapshot(root, skip=may_write) == before, "a file outside its folder changed"
    for name, digest in kept.items():  # the training run's own files never change
        if name.startswith(("results-final", "predictions/final", "adapter/")):
            assert snapshot(root / "mle").get(name) == digest, name
    return code


words = st.one_of(st.sampled_from(TRICKY_TEXT), st.text(max_size=8))
small_ints = st.integers(min_value=-3, max_value=4).map(str)


def flag(name: str, *choices: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.one_of(*choices), min_size=1, max_size=3).map(lambda v: [name, *v])


eval_flags = st.lists(
    st.one_of(
        flag("--datasets", st.sampled_from(["rte", "mrpc", "trec", '{"name": 5}']), words),
        flag("--samples", small_ints, words),
        flag("--limit", small_ints, words),
        flag("--tag", words, st.sampled_from(["final", "step2", "fz", "FINAL", "eval"])),
        flag("--noise", st.sampled_from(["sequence", "flipout", "head"]), words),
        flag("--model", words),
        st.just(["--overwrite"]),
    ),
    max_size=4,
).map(lambda groups: [part for group in groups for part in group])


@examples(12)
@given(eval_flags)
def test_fuzz_eval_flags(workspace, capsys, monkeypatch, argv):
    _run(capsys, monkeypatch, workspace, ["eval", "mle", "--limit", "2", *argv], workspace / "mle")


row_keys = st.sampled_from(["dataset", "method", "seed", "n_samples", "acc", "ece", "nll",
                            "rougeL", "steps", "x"])  # fmt: skip
rows = st.lists(st.dictionaries(row_keys, values, max_size=8), max_size=3)


@examples(60)
@given(
    rows,
    st.sampled_from([".json", ".jsonl"]),
    st.one_of(st.none(), words, st.sampled_from(["out/t.md", "t.png", "rows.json"])),
    st.one_of(st.none(), st.lists(words, min_size=1, max_size=2)),
)
def test_fuzz_report_rows_and_flags(workspace, capsys, monkeypatch, data, suffix, output, metrics):
    folder = workspace / "report"
    folder.mkdir(exist_ok=True)
    path = folder / f"rows{suffix}"
    text = "\n".join(json.dumps(r) for r in data) if suffix == ".jsonl" else json.dumps(data)
    path.write_text(text)
    argv = ["report", str(path)]
    if output is not None:
        argv += ["--output", str(folder / output) if output else ""]
    if metrics:
        argv += ["--metrics", *metrics]
    before = path.read_bytes()
    _run(capsys, monkeypatch, workspace, argv, folder)
    assert path.read_bytes() == before or (output and folder / output == path)


input_lines = st.lists(
    st.one_of(
        st.binary(max_size=20),
        st.fixed_dictionaries({"source": values}).map(lambda r: json.dumps(r).encode()),
        st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    min_size=1,
    max_size=3,
)
generate_flags = st.lists(
    st.one_of(
        flag("--samples", small_ints, words),
        flag("--seed", small_ints, st.sampled_from(["4294967296", "100000000000000"])),
        flag("--max-new-tokens", small_ints, st.sampled_from(["64", "200"])),
        flag("--format", st.sampled_from(["jsonl", "text"]), words),
        st.just(["--truncate"]),
    ),
    max_size=3,
).map(lambda groups: [part for group in groups for part in group])


@examples(12)
@given(input_lines, st.sampled_from(["in.jsonl", "in.txt"]), generate_flags)
def test_fuzz_generate_inputs_and_flags(workspace, capsys, monkeypatch, lines, name, argv):
    folder = workspace / "generate"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(b"\n".join(lines))
    command = ["generate", "gen", "--input", str(folder / name), "--quiet", *argv]
    _run(capsys, monkeypatch, workspace, command, folder)


# keys a fuzzed run may set without making CI slow (the step and row counts are pinned)
TRAIN_KEYS = ["lr", "seed", "method", "adapter.r", "adapter.alpha", "adapter.kind",
              "adapter.dropout", "warmup_ratio", "kl_plan", "kl_clock_scale", "eval_samples",
              "calib_fraction", "head", "protocol", "precision", "eval_datasets", "dataset",
              "method_options.members", "method_options.link", "x"]  # fmt: skip
train_sets = st.lists(
    st.tuples(st.sampled_from(TRAIN_KEYS), st.one_of(values.map(json.dumps), words)),
    max_size=3,
)


@examples(8)
@given(train_sets)
def test_fuzz_train_settings(workspace, capsys, monkeypatch, pairs):
    out = workspace / "train-fuzz"
    argv = ["train", "--output-dir", str(out)]
    for key, value in pairs:
        argv += ["--set", f"{key}={value}"]
    pinned = ["max_steps=2", "train_limit=12", "eval_limit=4", "batch_size=4",
              "max_length=32", "save_every=0", "anchor_size=4"]  # fmt: skip
    for item in pinned:
        argv += ["--set", item]
    code = _run(capsys, monkeypatch, workspace, argv, out)
    if code == 2 and out.exists():  # a refused start never leaves a folder a rerun refuses
        assert not RunDir(out).holds_progress()
    if out.exists():
        import shutil

        shutil.rmtree(out)
