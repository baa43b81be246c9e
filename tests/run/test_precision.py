"""The bf16-on-a-slow-CPU warning: what the CPU reports, and what a run prints at start."""

from pathlib import Path

import pytest
import torch

from blob_lora.run import context, precision
from blob_lora.run.config import RunConfig
from blob_lora.run.runner import Runner


def _cpu_flags() -> set[str]:
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        pytest.skip("no /proc/cpuinfo to compare with")
    for line in info.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    pytest.skip("/proc/cpuinfo lists no flags")


def test_native_bf16_follows_the_cpu_flags():
    """bf16 instructions (AVX512-BF16, AMX): native; no AVX512 and no bf16 conversion
    instructions at all (plain AVX2): not native. Anything between is oneDNN's choice."""
    flags = _cpu_flags()
    if {"avx512_bf16", "amx_bf16"} & flags:
        assert precision.cpu_has_native_bf16()
    elif any(f.startswith(("avx512", "amx", "avx_ne_convert", "avx_vnni")) for f in flags):
        pytest.skip("between AVX2 and native bf16: oneDNN's choice, not asserted")
    else:
        assert not precision.cpu_has_native_bf16()


@pytest.mark.parametrize("native", [True, False])
def test_warning_only_for_bf16_on_a_cpu_without_it(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    warning = precision.slow_precision_warning("bf16", torch.device("cpu"))
    assert (warning is None) == native
    if warning:
        assert "precision=fp32" in warning and "\n" not in warning
    assert precision.slow_precision_warning("fp32", torch.device("cpu")) is None
    assert precision.slow_precision_warning("bf16", torch.device("cuda")) is None


def test_a_bf16_run_on_such_a_cpu_says_so_at_start(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(context, "no_accelerator", lambda: True)  # the CPU, on a GPU machine too
    for name in ("fp32", "bf16"):
        cfg = RunConfig.from_dict(
            {"model": "minilm", "dataset": "rte", "precision": name, "output_dir": str(tmp_path)}
        )
        Runner(cfg)
        err = capsys.readouterr().err
        assert ("precision=bf16 on a CPU without native bf16" in err) == (name == "bf16")
