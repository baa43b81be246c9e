"""Two bitsandbytes log notices that are no news to a blob-lora user, dropped from the log.

- 'MatMul8bitLt: inputs will be cast ... to float16': logged for every 8-bit layer on every
  call (thousands of lines per epoch); the cast is how LLM.int8() works.
- 'Failed to load CPU gemm_4bit_forward from kernels-community': logged whenever
  bitsandbytes is imported (peft imports it) on an AVX512-BF16 CPU; an optional inference
  kernel fetched from the hub, which a training run does not use.

Installed when the package is imported (no torch import), before anything imports
bitsandbytes: a filter on a logger that bitsandbytes creates later by the same name.
"""

from __future__ import annotations

import logging

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
