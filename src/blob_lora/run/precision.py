"""Whether `precision=bf16` helps on the device a run gets.

bf16 autocast is about 2x faster than fp32 on GPUs and on CPUs with native bf16 (AVX512 or
AMX). On a CPU without it (AVX2 only) torch falls back to slow kernels: Gemma-3 270M trained
about 45x slower than in fp32 on a 2-core AMD EPYC (bench/README.md, "bf16 autocast"). A run that
asks for bf16 there is told so at start, with the fix; it is not refused, since the numbers
it computes are the same.
"""

from __future__ import annotations

import torch


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 matmuls natively on this CPU (True when torch cannot say)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


def slow_precision_warning(precision: str, device: torch.device) -> str | None:
    """The start-of-run warning for bf16 on a CPU without native bf16; None otherwise."""
    if precision != "bf16" or device.type != "cpu" or cpu_has_native_bf16():
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    return (
        f"warning: precision=bf16 on a CPU without native bf16 (torch reports {capability}): "
        "its matmuls fall back to slow kernels, tens of times slower than fp32; set "
        "precision=fp32 on this machine"
    )
