"""What machine a number was measured or predicted on."""

from __future__ import annotations

import functools
from pathlib import Path


@functools.cache
def cpu_name() -> str | None:
    """The CPU's model name from /proc/cpuinfo (None where there is none: not Linux)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), None)
