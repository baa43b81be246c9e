"""`blob config` and `--help` print the schema's own words: a range changed in the type
changes both, and a key's default is the one a run gets."""

from blob_lora.cli import main
from blob_lora.run.config import RunConfig
from blob_lora.schema import describe


def test_blob_config_lists_every_key_with_the_types_range_and_the_runs_default(capsys):
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines() if line and not line[0].isspace()}
    assert {key for key, *_ in describe(RunConfig)} <= listed
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "int >= 0 and < 2**32" in lines["seed"]
    assert "float >= 0 and < 1" in lines["warmup_ratio"] and "0.06" in lines["warmup_ratio"]
    assert "float > 0 and <= 1" in lines["gen_top_p"]
    assert "fp32 | bf16" in lines["precision"]
    assert "8.0" in lines["adapter.alpha"]  # a run's adapter (alpha 8), not the class's 16


def test_the_flags_help_shows_the_same_ranges(capsys):
    for argv, words in (
        (["train", "--help"], "[int >= 0 and < 2**32]"),
        (["eval", "--help"], "[plain name]"),
        (["generate", "--help"], "[int >= 1]"),
    ):
        try:
            main(argv)
        except SystemExit as stop:
            assert stop.code == 0
        assert words in " ".join(capsys.readouterr().out.split()), argv
