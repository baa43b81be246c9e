"""Protocol presets: named sets of settings that a run takes as a whole.

``paper`` follows the authors' code (Wang-ML-Lab/bayesian-peft) on every point where our
defaults differ from it; each point is also an ordinary setting, documented where it lives:

1. noise: flipout, per-token signs, in training and at N samples (``adapter.sample_mode``,
   and ``adapter.predict_sample_mode`` unset);
2. encoder head: LoRA/BLoB on the classifier's Linear layers over its frozen random init
   (``head=lora``);
3. ensemble: logits averaged, then softmax; members see the same batches, differ by init
   (``ens``: ``combine=logits``, ``same_data=true``);
4. MC dropout: every dropout module on at prediction, the base model's too (``mcd``:
   ``scope=all``);
5. TFB: their bisection and NLL criterion, threshold 0.003 over [0.001, 0.015], 5 steps,
   10 samples (``tfb``: ``bisection=authors`` ...);
6. Laplace: laplace-lora's prior fit, 100 Adam steps from 1.0, and 100k draws of the
   linearized predictive (``la``: ``prior_fit=adam``, ``link_samples=100000``);
7. AdamW eps 1e-6, and LR schedulers stepped once per process (``adam_eps``,
   ``lr_schedule_per_process``).

The KL schedule is not part of it: ``kl_plan=authors`` adds their cycle length and kl_lr.
A setting given explicitly with a different value than the preset's is an error, never
silently overridden either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ..errors import ConfigError
from ..schema import validate_value

PROTOCOLS = ("default", "paper")

PAPER_RUN: dict[str, Any] = {"head": "lora", "adam_eps": 1e-6, "lr_schedule_per_process": True}
PAPER_ADAPTER: dict[str, Any] = {"sample_mode": "flipout", "predict_sample_mode": None}


def paper_method_options(method: str) -> dict[str, Any]:
    """The method_options protocol=paper sets for `method`: the method says (its
    `paper_options`); an unknown method gets none here and its error from the registry."""
    from ..methods import METHODS  # here, not at import: methods pull in torch

    known = METHODS.get(method)
    return dict(known.paper_options) if known is not None else {}


def _merge(given: dict[str, Any], preset: dict[str, Any], where: str) -> dict[str, Any]:
    for key, value in preset.items():
        if key in given and given[key] != value:
            raise ConfigError(
                f"{where}{key}={given[key]!r} conflicts with protocol=paper, which sets "
                f"{where}{key}={value!r} (the authors' code); drop one of the two"
            )
    return given | preset


def section(value: Any, name: str) -> dict[str, Any]:
    """A settings section (``adapter``, ``method_options``) as a dict; None is empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{name} must be a mapping of keys to values (e.g. {name}.key=value), got "
            f"{value!r} ({type(value).__name__})"
        )
    return dict(value)


def apply_protocol(data: dict[str, Any]) -> dict[str, Any]:
    """The config mapping with its protocol's settings filled in (a copy)."""
    protocol = data.get("protocol", "default")
    protocol = validate_value(Literal[PROTOCOLS], protocol, "protocol")  # it picks presets
    if protocol == "default":
        return data
    out = _merge(dict(data), PAPER_RUN, "")
    adapter = out.get("adapter")
    if hasattr(adapter, "to_dict"):
        adapter = adapter.to_dict()
    out["adapter"] = _merge(section(adapter, "adapter"), PAPER_ADAPTER, "adapter.")
    method = out.get("method", "blob")
    method = method if isinstance(method, str) else ""  # its own error comes from the schema
    options = section(out.get("method_options"), "method_options")
    out["method_options"] = _merge(options, paper_method_options(method), "method_options.")
    return out
