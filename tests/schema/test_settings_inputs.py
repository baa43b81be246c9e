"""Issue 31's settings inputs, each as a new user typed it: before the schema each gave a
traceback, a misleading line or a run folder nothing could finish; now each exits 2 with
one line naming the setting (or runs), before anything is written."""

import json

import pytest
from minilm_runs import tiny_run_config

from blob_lora.cli import main
from blob_lora.run.runner import Runner

# a tiny MiniLM RTE run ("C" in the issue), as flags
C = [
    "train", "--method", "mle", "--max-steps", "2", "--set", "train_limit=16",
    "--set", "eval_limit=8", "--set", "batch_size=4", "--set", "max_length=48",
    "--set", "save_every=0",
]  # fmt: skip


def refused(capsys, argv, tmp_path, *needles):
    """`blob` exits 2 with one line holding every needle, and writes no run folder."""
    out_dir = tmp_path / "out"
    code = main([*argv, "--output-dir", str(out_dir)] if argv[0] == "train" else argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    err = lines[-1]  # above it at most a model's loading bar
    assert err.startswith("error: ") and "Traceback" not in "".join(lines)
    assert sum(line.startswith("error") for line in lines) == 1
    for needle in needles:
        assert needle in err, err
    assert not out_dir.exists()
    return err


def yaml_file(tmp_path, text: bytes | str):
    path = tmp_path / "c.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (["adapter=5"], ["adapter must be a mapping", "got 5 (int)"]),
        (["adapter.alpha=abc"], ["adapter.alpha: Input should be a valid number", "'abc'"]),
        (["adapter.r=true"], ["adapter.r: Input should be a valid integer", "True (bool)"]),
        (["protocol=paper", "method_options=abc"], ["method_options must be a mapping"]),
        (["protocol=paper", "adapter=5"], ["adapter must be a mapping"]),
        (
            ["method_options.link_samples=abc"],
            ["unknown method_options ['link_samples'] for 'mle'"],
        ),
        (["lr=.nan"], ["lr: Input should be a finite number"]),
        (["warmup_ratio=.nan"], ["warmup_ratio: Input should be a finite number"]),
        (["kl_clock_scale=.inf"], ["kl_clock_scale: Input should be a finite number"]),
        (['dataset={"name": 5}'], ["dataset.name: Input should be a valid string"]),
        (['dataset={"name": "rte", "dev": {"fraction": "x"}}'], ["dataset.dev.fraction"]),
        (
            ['dataset={"name": "boolq", "resplit": {"eval_fraction": "x"}}'],
            ["dataset.resplit.eval_fraction"],
        ),
        (
            ['dataset={"path": "d.jsonl", "source": "s", "target": "t", "template": 5}'],
            ["dataset.template: Input should be a valid string"],
        ),
        (
            [
                'dataset={"path": "d.jsonl", "text": "t", "label": "l", '
                '"label_map": {"pos": 1, "neg": "zero"}}'
            ],
            ["dataset.label_map.neg: Input should be a valid integer", "'zero'"],
        ),  # fmt: skip
        (
            ['dataset={"path": "d.jsonl", "text": "Review: {s", "label": "l"}'],
            ["dataset.text: template 'Review: {s' does not parse"],
        ),
        (['eval_datasets=[{"name": 5}]'], ["eval_datasets[0].name"]),
    ],
)
def test_a_bad_setting_is_one_line_naming_its_place_and_no_run_starts(
    overrides, needles, tmp_path, capsys
):
    argv = list(C)
    for item in overrides:
        argv += ["--set", item]
    refused(capsys, argv, tmp_path, *needles)


def test_a_laplace_option_of_the_wrong_type_is_named(tmp_path, capsys):
    argv = [*C, "--set", "method_options.link_samples=abc"]
    argv[argv.index("mle")] = "la"
    refused(capsys, argv, tmp_path, "method_options.link_samples: Input should be a valid integer")


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("adapter: [1, 2]\n", ["adapter must be a mapping", "[1, 2] (list)"]),
        ("1: 2\n", ["the settings have the key 1 (int); setting names are text"]),
        (b"model: mini\xfflm\n", ["is not UTF-8 text (byte 0xff at offset 11)"]),
        ("lr: 1e-3\nlr: 2e-3\n", ["line 2", "key 'lr' is given twice"]),
        ("adapter:\n  r: 4\n  r: 8\n", ["key 'r' is given twice"]),
    ],
)
def test_a_bad_yaml_config_file_is_one_line(text, needles, tmp_path, capsys):
    refused(capsys, ["train", "--config", yaml_file(tmp_path, text)], tmp_path, *needles)


def test_generation_settings_with_nan_are_refused_before_training(tmp_path, capsys):
    """Before: training finished, then evaluation failed on NaN, and --resume was refused
    as changed (NaN != NaN), so nothing could finish the run."""
    for key in ("gen_top_p", "gen_temperature"):
        argv = ["train", "--dataset", "dialogsum", "--method", "mle", "--set", f"{key}=.nan"]
        refused(capsys, argv, tmp_path, f"{key}: Input should be a finite number")


def test_a_seed_beyond_the_rng_range_is_refused_before_training(tmp_path, capsys):
    """Before: training ran, then evaluation overflowed in seed * 1000003 + k."""
    argv = ["train", "--dataset", "dialogsum", "--method", "mle", "--seed", "50000000000000"]
    refused(capsys, argv, tmp_path, "seed: Input should be less than 4294967296")
    refused(capsys, [*C, "--set", "eval_subset_seed=-1"], tmp_path, "eval_subset_seed")


def test_a_flag_and_a_set_of_the_same_dataset_agree_by_value(tmp_path, capsys):
    """Before: `--dataset '{"name":"rte"}' --set 'dataset={"name":"rte"}'` "disagree"."""
    from blob_lora.run.config_file import load_run_config
    from blob_lora.run.train_cli import train_overrides

    args = main.__globals__["build_parser"]().parse_args(
        ["train", "--dataset", '{"name":"rte"}', "--set", 'dataset={"name": "rte"}']
    )
    cfg = load_run_config(None, train_overrides(args))
    assert json.loads(cfg.dataset) == {"name": "rte"}
    argv = ["train", "--dataset", '{"name":"rte"}', "--set", 'dataset={"name": "mrpc"}']
    refused(capsys, argv, tmp_path, "disagree")


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_choice_cell_that_is_not_a_json_list_names_the_row(tmp_path, capsys):
    """Before: JSONDecodeError, with no file or line named."""
    rows = [{"q": "x", "opts": "[yes, no]", "gold": 0}] * 4
    spec = {
        "paths": {s: _write_jsonl(tmp_path / f"{s}.jsonl", rows) for s in ("train", "validation")},
        "task": "choice", "question": "q", "choices": "opts", "label": "gold",
    }  # fmt: skip
    argv = ["train", "--model", "gemma-270m", "--set", f"dataset={json.dumps(spec)}"]
    refused(capsys, argv, tmp_path, "train.jsonl) line 1: field 'opts' holds '[yes, no]'")


def test_a_jsonl_line_that_is_a_bare_string_is_named_as_such(tmp_path, capsys):
    """Before: "its fields are [' ', ' ', 'a', 'e', ...]" (the string's characters)."""
    path = tmp_path / "train.jsonl"
    path.write_text('{"t": "a b", "l": 0}\n"a bare sentence"\n')
    spec = {"paths": {"train": str(path), "validation": str(path)}, "text": "t", "label": "l"}
    argv = [*C, "--set", f"dataset={json.dumps(spec)}"]
    refused(capsys, argv, tmp_path, "train.jsonl:2: a JSON line must be an object", "got a str")


def test_long_texts_get_advice_within_the_models_positions(tmp_path, capsys):
    """Before: "raise max_length to at least 3004" on MiniLM (512 positions), and following
    it gave a RuntimeError."""
    rows = [{"t": " ".join(["word"] * 3000), "l": i % 2} for i in range(8)]
    path = _write_jsonl(tmp_path / "long.jsonl", rows)
    spec = json.dumps({"paths": {"train": path, "validation": path}, "text": "t", "label": "l"})
    base = [*C, "--set", f"dataset={spec}"]
    refused(capsys, base, tmp_path, "raise max_length to 512, the model's limit")
    refused(
        capsys,
        [*base, "--set", "max_length=3004"],
        tmp_path,
        "max_length=3004 is more than model 'minilm' has positions (512)",
    )
    out = tmp_path / "fits"
    assert main([*base, "--set", "max_length=512", "--output-dir", str(out)]) == 0
    assert (out / "results-final.json").is_file()


def test_tfb_from_a_blob_run_says_the_adapter_is_bayesian(tmp_path, capsys):
    """Before: "load it into the base model it was trained on" (it was the same base)."""
    blob_run = tiny_run_config(tmp_path, "blob", max_steps=2, save_every=0, eval_samples=[0])
    Runner(blob_run).train()
    argv = ["train", "--method", "tfb", "--max-steps", "0", "--set", f"init_from={tmp_path}/blob"]
    refused(capsys, argv, tmp_path, "holds a 'blob' adapter", "start it from an mle or map run")


def test_a_local_model_folder_is_stored_absolute_and_an_older_relative_run_resumes(
    tmp_path, monkeypatch, capsys
):
    """A run trained with a relative --model could not be evaluated from another folder;
    new runs store the folder's absolute path, and a run that stored it as given still
    resumes with the same command."""
    from blob_lora.models import SHORT_NAMES

    (tmp_path / "mini").symlink_to(SHORT_NAMES["minilm"].locate(), target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    argv = [*C, "--model", "mini", "--output-dir", "rel"]
    assert main(argv) == 0
    saved = tmp_path / "rel" / "run_config.json"
    config = json.loads(saved.read_text())
    assert config["model"] == str((tmp_path / "mini").resolve())
    saved.write_text(json.dumps(config | {"model": "mini"}))  # as runs stored it before
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0, capsys.readouterr().err
