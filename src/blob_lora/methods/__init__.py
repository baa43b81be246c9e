"""Method registry: one module per method, one line here."""

from __future__ import annotations

import dataclasses
import typing

from ..errors import ConfigError
from ..schema import validate_value
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
    if not isinstance(name, str) or name not in METHODS:
        raise ConfigError(f"method {name!r} is unknown; use one of {sorted(METHODS)}")
    method = METHODS[name]
    if options:
        if not isinstance(options, dict):
            raise ConfigError(f"method_options must be a mapping, got {options!r}")
        known = method.option_names()
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"unknown method_options {unknown} for {name!r}; known: {sorted(known)}"
            )
        hints = typing.get_type_hints(type(method), include_extras=True)  # values converted
        checked = {
            key: validate_value(hints[key], value, f"method_options.{key}")
            for key, value in options.items()
        }
        method = dataclasses.replace(method, **checked)
    return method


__all__ = ["METHODS", "Method", "get_method", "sample_label"]
