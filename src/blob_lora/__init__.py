"""blob-lora: Bayesian LoRA (BLoB) fine-tuning for transformers models.

The public names load on first use (PEP 562), so `blob --help` and the config checks run
without importing torch and transformers.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from .errors import BlobLoraError, CheckpointError, ConfigError

# Two bitsandbytes log notices that are no news to a blob-lora user, dropped from the log:
# 'MatMul8bitLt: inputs will be cast ... to float16' (logged for every 8-bit layer on every
# call; the cast is how LLM.int8() works) and 'Failed to load CPU gemm_4bit_forward from
# kernels-community' (logged whenever bitsandbytes is imported on an AVX512-BF16 CPU: an
# optional inference kernel from the hub). Installed here, at package import and without
# importing torch, before anything imports bitsandbytes: a filter on a logger that
# bitsandbytes creates later by the same name.
_NOTICES = (
    ("bitsandbytes.autograd._functions", "inputs will be cast"),
    ("bitsandbytes.backends.cpu.ops", "kernels-community"),
)


class _DropNotice(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in str(record.msg)


def quiet_bitsandbytes() -> None:
    for name, text in _NOTICES:
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropNotice) for f in log.filters):
            log.addFilter(_DropNotice(text))


quiet_bitsandbytes()

_LAZY = {
    "export_peft": "adapter_io",
    "from_peft": "adapter_io",
    "load_adapter": "adapter_io",
    "save_adapter": "adapter_io",
    "BlobModel": "adapter_model",
    "get_blob_model": "adapter_model",
    "AdapterConfig": "config",
    "KLSchedule": "kl_plan",
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
