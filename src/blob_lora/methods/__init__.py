"""Method registry: one module per method, one line here."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Method
from .bbb import METHOD as BBB
from .blob import METHOD as BLOB
from .ens import METHOD as ENS
from .laplace import METHOD as LA
from .map import METHOD as MAP
from .mcd import METHOD as MCD
from .mle import METHOD as MLE
from .tfb import METHOD as TFB

METHODS: dict[str, Method] = {m.name: m for m in (MLE, MAP, MCD, ENS, BBB, LA, BLOB, TFB)}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"method {name!r} is unknown; use one of {sorted(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "Method", "get_method"]
