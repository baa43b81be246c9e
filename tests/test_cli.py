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
