import subprocess
import sys


def test_the_cli_parses_without_importing_torch():
    """`blob --help` answers at once: torch and transformers load only when a command runs."""
    code = (
        "import sys, blob_lora.cli as c; c.build_parser().parse_args(['train', '--resume']);"
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_public_names_still_load_on_first_use():
    import blob_lora

    assert blob_lora.KLSchedule.__name__ == "KLSchedule"
    assert set(blob_lora.__all__) <= set(dir(blob_lora))


def test_blob_config_lists_every_key_with_its_help(capsys):
    import dataclasses

    from blob_lora.cli import main
    from blob_lora.run.config import RunConfig

    assert main(["config"]) == 0
    out = capsys.readouterr().out
    for f in dataclasses.fields(RunConfig):
        if f.name != "adapter":
            assert f"\n{f.name} " in "\n" + out
    assert "adapter.prior_std" in out and "precedence: --config file < flags" in out


def test_a_flag_and_a_set_of_the_same_key_that_disagree_are_an_error(capsys):
    from blob_lora.cli import main

    assert main(["train", "--method", "map", "--set", "method=mle"]) == 2
    assert "--method map and --set method=mle disagree" in capsys.readouterr().err
