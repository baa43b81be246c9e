"""blob-lora: Bayesian LoRA (BLoB) fine-tuning for transformers models.

The public names load on first use (PEP 562), so `blob --help` and the config checks run
without importing torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

from .bnb_logs import quiet_bitsandbytes
from .errors import BlobLoraError, CheckpointError, ConfigError

quiet_bitsandbytes()

_LAZY = {
    "export_peft": "adapter_io",
    "from_peft": "adapter_io",
    "load_adapter": "adapter_io",
    "save_adapter": "adapter_io",
    "BlobModel": "adapter_model",
    "get_blob_model": "adapter_model",
    "AdapterConfig": "config",
    "KLSchedule": "kl_schedule",
    "AdapterOptimizer": "optim",
    "OptimConfig": "optim",
    "predictive_probs": "predictive",
}

__all__ = [  # noqa: RUF022 - the lazy names, then the errors loaded with the package
    *_LAZY,
    "BlobLoraError",
    "CheckpointError",
    "ConfigError",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'blob_lora' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
