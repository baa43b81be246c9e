"""`blob generate` over bad flags and bad inputs, on tiny runs trained here (a BART with 64
learned positions, a decoder-only Gemma-3 with 64): every refusal is one line on stderr,
exit 2, before any output; the inputs that are fine still generate."""

from __future__ import annotations

import io
import json

import pytest
from gen_tiny import bart_tokenizer, llama_tokenizer, tiny_gemma, toy_generation_dataset
from tiny_models import tiny_bart

from blob_lora.cli import main
from blob_lora.generation.cli import read_inputs
from blob_lora.generation.flags import GenerateFlags
from blob_lora.schema import describe

SOURCES = ("person1 : hello . person1 wants to buy the car . person2 : ok", "the cat sat")
LATIN1 = "café person1 hello\n".encode("latin-1")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate-inputs")
    rows = [{"id": str(i), "dialogue": f"person1 wants to buy the {o} .", "summary": f"the {o}"}
            for i, o in enumerate(("book", "car", "house", "cat", "dog", "memo"))]  # fmt: skip
    dataset = toy_generation_dataset(root, rows, 4)
    out = {}
    for name, model, tok in (("bart", tiny_bart(), bart_tokenizer()),
                             ("gemma", tiny_gemma(), llama_tokenizer())):  # fmt: skip
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = root / f"run-{name}"
        args = ["train", "--model", str(root / name), "--method", "mle", "--output-dir",
                str(out[name]), "--max-steps", "1", "--set", f"dataset={dataset}",
                "--set", "batch_size=4", "--set", "max_length=48", "--set", "max_new_tokens=4",
                "--set", "gen_samples=2"]  # fmt: skip
        assert main(args) == 0
    return out


def _generate(capsys, *args):
    capsys.readouterr()
    code = main(["generate", *map(str, args), "--quiet"])
    return code, capsys.readouterr()


def _refused(code, out, *parts):
    assert code == 2, (out.out, out.err)
    assert out.err.startswith("error: ") and out.err.count("\n") == 1, out.err
    assert "Traceback" not in out.err and out.out == ""  # no output before the refusal
    for part in parts:
        assert part in out.err, (part, out.err)


@pytest.fixture
def inputs(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"source": s}) + "\n" for s in SOURCES))
    return path


def _stdin(monkeypatch, data: bytes):
    """A real pipe's stdin: text over a byte buffer (`sys.stdin.buffer`), not a tty."""
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_the_generate_flags_are_the_settings_fields():
    flags = {row[0] for row in describe(GenerateFlags)}
    assert flags == {"run_dir", "input", "samples", "seed", "format", "max_new_tokens",
                     "prompt", "truncate", "quiet"}  # fmt: skip
    from blob_lora.cli import build_parser

    args = build_parser().parse_args(["generate", "r", "--samples", "0", "--truncate"])
    from blob_lora.schema import read_flags

    read = read_flags(GenerateFlags, args)
    assert (read.run_dir, read.samples, read.truncate, read.quiet) == ("r", 0, True, False)
    assert (read.seed, read.format, read.max_new_tokens, read.input) == (None, "jsonl", None, None)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--seed", "100000000000000"), "--seed: Input should be less than 4294967296"),
        (("--seed", "-1"), "--seed: Input should be greater than or equal to 0"),
        (("--samples", "1"), "--samples: 1 sample cannot measure disagreement"),
        (("--samples", "-2"), "--samples: Input should be greater than or equal to 0"),
        (("--max-new-tokens", "0"), "--max-new-tokens: Input should be greater than or equal"),
    ],
    ids=["seed-100000000000000", "seed--1", "samples-1", "samples--2", "max-new-tokens-0"],
)
def test_generate_flags_out_of_range_are_one_line(runs, inputs, capsys, flags, message):
    # --seed 100000000000000 was: ValueError/OverflowError from the RNG
    code, out = _generate(capsys, runs["bart"], "--input", inputs, *flags)
    _refused(code, out, message)


def test_generate_bart_max_new_tokens_200_names_the_64_positions(runs, inputs, capsys):
    # was: IndexError: index out of range in self (BART's learned positions end at 64)
    code, out = _generate(capsys, runs["bart"], "--input", inputs, "--max-new-tokens", 200)
    _refused(code, out, "--max-new-tokens 200 does not fit the model", "64 positions",
             "--max-new-tokens 64 or fewer")  # fmt: skip
    code, out = _generate(capsys, runs["bart"], "--input", inputs, "--max-new-tokens", 65)
    _refused(code, out, "its decoder has 64 positions")
    # at the limit it generates: sampled outputs run to the end of the positions
    code, out = _generate(capsys, runs["bart"], "--input", inputs, "--max-new-tokens", 64,
                          "--samples", 3, "--seed", 1)  # fmt: skip
    assert code == 0, out.err
    records = [json.loads(line) for line in out.out.splitlines()]
    assert [r["input"] for r in records] == list(SOURCES)
    assert all(len(r["samples"]) == 3 for r in records)


def test_generate_gemma_prompt_plus_max_new_tokens_must_fit_its_positions(runs, inputs, capsys):
    code, out = _generate(capsys, runs["gemma"], "--input", inputs, "--max-new-tokens", 200)
    _refused(code, out, "--max-new-tokens 200 does not fit the model: input 1 (id 0) has a",
             "of the model's 64 positions")  # fmt: skip
    room = int(out.err.split("pass --max-new-tokens ")[1].split()[0])
    assert 0 < room < 64
    code, out = _generate(capsys, runs["gemma"], "--input", inputs, "--max-new-tokens", room,
                          "--samples", 0)  # fmt: skip
    assert code == 0, out.err
    code, out = _generate(capsys, runs["gemma"], "--input", inputs, "--max-new-tokens", room + 1)
    _refused(code, out, f"--max-new-tokens {room + 1} does not fit the model")


def _malformed_jsonl() -> str:
    lines = [json.dumps({"source": f"person1 wants to buy the car number {i}"}) for i in range(5)]
    lines[2] = lines[2][:-2]  # one line cut short
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("truncate", [False, True], ids=["plain", "truncate"])
def test_generate_jsonl_with_one_malformed_line_names_line_3(runs, tmp_path, capsys, truncate):
    # was: the whole file read as one plain-text input: "input 1 (id 0) is too long" and,
    # with --truncate, exit 0 with one record whose input was the raw JSON text
    path = tmp_path / "bad.jsonl"
    path.write_text(_malformed_jsonl())
    extra = ["--truncate", "--samples", "0"] if truncate else []
    code, out = _generate(capsys, runs["bart"], "--input", path, *extra)
    _refused(code, out, f"{path} line 3 is not JSON (Unterminated string")


def test_generate_json_lines_are_known_by_their_first_line_on_stdin_and_txt(
    runs, tmp_path, capsys, monkeypatch
):
    path = tmp_path / "bad.txt"  # no .jsonl name: the first line (an object) says JSON lines
    path.write_text(_malformed_jsonl())
    code, out = _generate(capsys, runs["bart"], "--input", path)
    _refused(code, out, f"{path} line 3 is not JSON")
    _stdin(monkeypatch, _malformed_jsonl().encode())
    code, out = _generate(capsys, runs["bart"])
    _refused(code, out, "stdin line 3 is not JSON")
    text = tmp_path / "plain.jsonl"  # a .jsonl name: JSON lines even where line 1 is text
    text.write_text("person1 : hello\n")
    code, out = _generate(capsys, runs["bart"], "--input", text)
    _refused(code, out, f"{text} line 1 is not JSON (Expecting value, column 1)")


def test_generate_plain_text_with_braces_stays_plain_text(runs, tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_text('person1 : {"not": json} hello\n\n"quoted" the cat\n')
    code, out = _generate(capsys, runs["bart"], "--input", path, "--samples", 0)
    assert code == 0, out.err
    records = [json.loads(line) for line in out.out.splitlines()]
    assert [r["input"] for r in records] == ['person1 : {"not": json} hello', '"quoted" the cat']


def test_generate_latin1_txt_names_the_byte_and_line(runs, tmp_path, capsys):
    # was: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 in position 3
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"person1 hello\n\n" + LATIN1)
    code, out = _generate(capsys, runs["bart"], "--input", path)
    _refused(code, out, f"{path} is not UTF-8 text: byte 0xe9 on line 3 (column 4)")


def test_generate_latin1_bytes_on_stdin_are_named_like_a_files(runs, capsys, monkeypatch):
    # was: TypeError: TextEncodeInput must be Union[...] (stdin decoded with surrogateescape)
    _stdin(monkeypatch, LATIN1)
    code, out = _generate(capsys, runs["bart"])
    _refused(code, out, "stdin is not UTF-8 text: byte 0xe9 on line 1 (column 4)")
    _stdin(monkeypatch, "\ufeffperson1 : café hello\n".encode())  # UTF-8 with a BOM is fine
    code, out = _generate(capsys, runs["bart"], "--samples", 0)
    assert code == 0, out.err
    assert json.loads(out.out)["input"] == "person1 : café hello"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"source": "\\ud83d"}', "line 2: the text holds a lone surrogate \\ud83d"),
        ('"\\udc00 text"', "line 2: the text holds a lone surrogate \\udc00"),
        ('{"source": "hello", "id": "\\ud800"}', "line 2 (id): the text holds a lone surrogate"),
        ('{"source": "hello", "id": [1]}', "line 2: the id is [1] (list)"),
        ('{"source": "hello", "id": null}', "line 2: the id is null (NoneType)"),
        ("[" * 100_000, "line 2 is not JSON (nested too deeply)"),
        ("1" * 5000, "line 2 is not JSON (Exceeds the limit"),
        ("[1, 2]", "line 2: an input is a JSON object or string"),
    ],
    ids=[
        "source-ud83d",
        "string-udc00",
        "id-ud800",
        "id-list",
        "id-null",
        "nested-100000-deep",
        "5000-digit-int",
        "json-list",
    ],  # fmt: skip
)
def test_generate_jsonl_rows_that_are_no_input_are_named(runs, tmp_path, capsys, line, message):
    # a lone surrogate was: TypeError: TextEncodeInput must be Union[...] from the tokenizer
    path = tmp_path / "in.jsonl"
    path.write_text('{"source": "the cat"}\n' + line + "\n")
    code, out = _generate(capsys, runs["bart"], "--input", path)
    _refused(code, out, f"{path} {message}")


def test_generate_input_paths_that_are_no_file_are_one_line(runs, tmp_path, capsys):
    code, out = _generate(capsys, runs["bart"], "--input", tmp_path / "missing.txt")
    _refused(code, out, "does not exist")
    code, out = _generate(capsys, runs["bart"], "--input", tmp_path)
    _refused(code, out, "is a folder")
    code, out = _generate(capsys, runs["bart"], "--input", "")
    _refused(code, out, "input file . is a folder")
    (runs["bart"].parent / "damaged").mkdir(exist_ok=True)
    (runs["bart"].parent / "damaged" / "run_config.json").write_text("{")
    code, out = _generate(capsys, runs["bart"].parent / "damaged", "--input", tmp_path)
    _refused(code, out, "run_config.json is damaged (not JSON")


def test_read_inputs_keeps_json_strings_inside_json_lines():
    assert read_inputs('{"source": "a", "id": 7}\n"b"\n', "f") == [("7", "a"), ("1", "b")]
    # a first line that is a JSON string, not an object: plain text
    assert read_inputs('"a"\n"b"\n', "f") == [("0", '"a"\n"b"')]
    assert read_inputs('"a"\n', "f", jsonl=True) == [("0", "a")]
