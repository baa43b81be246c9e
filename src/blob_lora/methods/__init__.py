"""Method registry: one module per method, one line here."""

from __future__ import annotations

import dataclasses

from ..errors import ConfigError
from .base import Method
from .bbb import METHOD as BBB
from .blob import METHOD as BLOB
from .ens import METHOD as ENS
from .laplace import METHOD as LA
from .map import METHOD as MAP
from .mcd import METHOD as MCD
from .mle import METHOD as MLE
from .temperature import BLOB_TS, TS
from .tfb import METHOD as TFB

METHODS: dict[str, Method] = {
    m.name: m for m in (MLE, MAP, MCD, ENS, BBB, LA, BLOB, TFB, TS, BLOB_TS)
}


def sample_label(method: str, n_samples: int) -> str:
    """How tables name a method's rows at N: the registered method's own label; a name the
    registry does not know (e.g. ``mle+decoding``) shows N where it is not 0."""
    known = METHODS.get(method)
    if known is not None:
        return known.label(n_samples)
    return f"{method} (N={n_samples})" if n_samples else method


def get_method(name: str, options: dict | None = None) -> Method:
    """The registered method, with `options` replacing its own settings (e.g. Laplace's
    ``fit_on``, TFB's ``tolerance``); unknown options are errors."""
    if name not in METHODS:
        raise ConfigError(f"method {name!r} is unknown; use one of {sorted(METHODS)}")
    method = METHODS[name]
    if options:
        known = method.option_names()
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"unknown method_options {unknown} for {name!r}; known: {sorted(known)}"
            )
        method = dataclasses.replace(method, **options)
    return method


__all__ = ["METHODS", "Method", "get_method", "sample_label"]
