"""`blob report` over damaged inputs and impossible outputs: each is one line on stderr
naming the file (and row and field), exit 2, and no file written or changed."""

from __future__ import annotations

import json

import pytest

from blob_lora.cli import main

# generation rows as `blob train` writes them (task=generate, bertscore off): the nulls are
# metrics it could not compute, which the table shows as "–"
GEN_ROWS = [
    {"model": "m", "dataset": "toy", "method": "mle", "n_samples": 0, "seed": 0, "steps": 2,
     "n_examples": 2, "task": "generate", "sampler": "mean", "rouge1": 10.0, "rouge2": 0.0,
     "rougeL": 10.0, "bertscore_f1": None, "unc_auroc": None, "aurc": 0.9, "nll": 4.2},
    {"model": "m", "dataset": "toy", "method": "mle", "n_samples": 2, "seed": 0, "steps": 2,
     "n_examples": 2, "task": "generate", "sampler": "decoding", "rouge1": 12.5,
     "rouge2": 0.0, "rougeL": 12.5, "bertscore_f1": None, "disagreement": 0.4,
     "unc_auroc": 0.5, "aurc": 0.95, "nll": 4.2},
]  # fmt: skip


def _row(**extra):
    row = {"dataset": "rte", "method": "mle", "n_samples": 0, "seed": 0, "acc": 60.0}
    return {**row, **extra}


def _report(capsys, *args):
    capsys.readouterr()
    code = main(["report", *map(str, args)])
    return code, capsys.readouterr()


def _one_line_error(code, out, *parts):
    assert code == 2, out
    assert out.err.startswith("error: ") and out.err.count("\n") == 1, out.err
    assert "Traceback" not in out.err
    for part in parts:
        assert part in out.err, (part, out.err)


def test_report_row_without_seed_names_file_line_and_field(tmp_path, capsys):
    # was: TypeError: '<' not supported between instances of 'NoneType' and 'int'
    path = tmp_path / "noseed.jsonl"
    rows = [_row(), _row(seed=1)]
    del rows[0]["seed"]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    code, out = _report(capsys, path)
    _one_line_error(code, out, f"{path} line 1 has no 'seed'")
    assert out.out == ""


def test_report_row_holding_null_acc_names_file_row_and_field(tmp_path, capsys):
    # was: TypeError: float() argument must be a string or a real number, not 'NoneType'
    path = tmp_path / "nullacc.json"
    path.write_text(json.dumps([_row(), _row(seed=1, acc=None)]))
    table = tmp_path / "t.md"
    code, out = _report(capsys, path, "--output", table)
    _one_line_error(code, out, f"{path} row 2 holds null for 'acc'")
    assert not table.exists()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (_row(dataset=None), "row 1 holds null for 'dataset'"),
        ({k: v for k, v in _row().items() if k != "method"}, "row 1 has no 'method'"),
        (_row(dataset=""), "'dataset' is '' (str); it must be non-empty text"),
        (_row(method=["mle"]), "'method' is ['mle'] (list)"),
        (_row(seed="0"), "'seed' is '0' (str); it must be a whole number >= 0"),
        (_row(seed=True), "'seed' is True (bool)"),
        (_row(n_samples=-1), "'n_samples' is -1 (int)"),
        (_row(acc="high"), "'acc' is 'high' (str), not a number"),
        (_row(acc=True), "'acc' is True (bool), not a number"),
        (_row(ece={"a": 1}), "'ece' is {'a': 1} (dict), not a number"),
        (_row(acc=10**400), "(int), not a number"),  # too large for a float: OverflowError
        (_row(dataset="\ud83d"), "'dataset' holds a lone surrogate"),
    ],
    ids=[
        "null-dataset",
        "no-method",
        "empty-dataset",
        "list-method",
        "text-seed",
        "bool-seed",
        "negative-n",
        "text-acc",
        "bool-acc",
        "object-ece",
        "huge-int-acc",
        "lone-surrogate-dataset",
    ],  # fmt: skip
)
def test_report_rows_with_bad_fields_are_one_line_errors(tmp_path, capsys, row, message):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([_row(seed=1), row]))
    code, out = _report(capsys, path)
    _one_line_error(code, out, str(path), message.replace("row 1", "row 2"))
    assert out.out == ""


def test_report_null_metrics_of_generation_rows_are_blanks_not_errors(tmp_path, capsys):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(GEN_ROWS))
    code, out = _report(capsys, path, "--metrics", "rougeL", "unc_auroc")
    assert code == 0, out.err
    assert "| toy | mle | 10.00 (1) | – |" in out.out  # unc. AUROC null at N=0
    assert "| toy | mle+decoding (N=2) | 12.50 (1) | 0.500 (1) |" in out.out


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", b'{"dataset": "rte"}\n\n{"dataset": "rte", ', "bad.jsonl line 3 is not"),
        (
            "latin1.json",
            '[{"dataset": "caf\xe9"}]'.encode("latin-1"),
            "is not UTF-8 text (byte 0xe9",
        ),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "(not JSON: nested too deeply)"),
        ("digits.json", b"[" + b"1" * 5000 + b"]", "(not JSON: Exceeds the limit"),
        ("list.json", b'[{"dataset": "rte", "method": "mle", "seed": 0}, 3]', "row 2 is int"),
    ],
    ids=[
        "jsonl-malformed-line-3",
        "latin1",
        "nested-100000-deep",
        "5000-digit-int",
        "row-not-an-object",
    ],  # fmt: skip
)
def test_report_unreadable_results_files_name_the_place(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    code, out = _report(capsys, path)
    _one_line_error(code, out, str(path), message)


def test_report_run_dir_with_a_damaged_run_config_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results-final.json").write_text(json.dumps([_row()]))
    (run / "run_config.json").write_text('{"method": ')
    code, out = _report(capsys, run)
    _one_line_error(code, out, f"{run / 'run_config.json'} is not a run config (not JSON")


def test_report_g_json_output_out_png_is_refused_as_the_plots_own_file(tmp_path, capsys):
    # was: the plot written to out.png, then overwritten by the Markdown table (exit 0)
    path = tmp_path / "g.json"
    path.write_text(json.dumps(GEN_ROWS))
    png = tmp_path / "out.png"
    code, out = _report(capsys, path, "--output", png)
    _one_line_error(code, out, f"--output {png} is where the plot goes", "out.md")
    assert not png.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["g.json"]
    png.write_bytes(b"old")  # an existing file is left as it was
    code, out = _report(capsys, path, "--output", png)
    assert code == 2 and png.read_bytes() == b"old"
    code, out = _report(capsys, path, "--output", tmp_path / "t.md", "--plot", tmp_path / "t.md")
    _one_line_error(code, out, "--plot and --output are both")
    assert not (tmp_path / "t.md").exists()


def test_report_outputs_over_an_input_are_refused(tmp_path, capsys):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(GEN_ROWS))
    before = path.read_bytes()
    for flag in ("--output", "--plot"):
        code, out = _report(capsys, path, flag, path)
        _one_line_error(code, out, f"{flag} {path} is one of the results being read")
    assert path.read_bytes() == before
    odd = tmp_path / "rows.png"  # results under a .png name: --output rows.md would plot over it
    odd.write_bytes(before)
    code, out = _report(capsys, odd, "--output", tmp_path / "rows.md")
    _one_line_error(code, out, "the plot (beside --output)")
    assert odd.read_bytes() == before and not (tmp_path / "rows.md").exists()
    run = tmp_path / "run"
    run.mkdir()
    (run / "results-final.json").write_text(json.dumps([_row()]))
    code, out = _report(capsys, run, "--output", run / "results-final.json")
    _one_line_error(code, out, "is one of the results being read")
    assert json.loads((run / "results-final.json").read_text()) == [_row()]


def test_report_generation_rows_output_under_dev_null_writes_nothing(tmp_path, capsys):
    # was: FileExistsError: [Errno 17] File exists: '/dev/null' (the plot's mkdir)
    path = tmp_path / "g.json"
    path.write_text(json.dumps(GEN_ROWS))
    code, out = _report(capsys, path, "--output", "/dev/null/t.md")
    _one_line_error(
        code, out, "cannot write the table to /dev/null/t.md: /dev/null is not a folder"
    )
    table, plot = tmp_path / "t.md", tmp_path / "p.png"
    code, out = _report(capsys, path, "--output", table, "--plot", "/dev/null/p.png")
    _one_line_error(
        code, out, "cannot write the plot to /dev/null/p.png: /dev/null is not a folder"
    )
    code, out = _report(capsys, path, "--output", "/dev/null/t.md", "--plot", plot)
    _one_line_error(code, out, "cannot write the table to /dev/null/t.md")
    assert not table.exists() and not plot.exists()  # neither half of the pair
    (tmp_path / "dir.md").mkdir()
    code, out = _report(capsys, path, "--output", tmp_path / "dir.md")
    _one_line_error(code, out, "dir.md: it is a folder; give a file path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.md", "g.json"]


def test_report_writes_table_and_plot_together(tmp_path, capsys):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(GEN_ROWS))
    table, plot = tmp_path / "new" / "t.md", tmp_path / "plots" / "p.png"
    code, out = _report(capsys, path, "--output", table, "--plot", plot)
    assert code == 0, out.err
    assert out.out == f"plot written to {plot}\ntable written to {table}\n"
    assert "| toy | mle+decoding (N=2) |" in table.read_text()
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.rglob(".*.tmp")]  # no temporary file left behind
    code, out = _report(capsys, path, "--output", tmp_path / "g2.md")
    assert code == 0 and (tmp_path / "g2.png").read_bytes()[:4] == b"\x89PNG"
