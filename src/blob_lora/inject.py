"""Put adapters on a model by module-name patterns (PEFT's `target_modules` semantics)."""

from __future__ import annotations

import re

from torch import nn

from .config import AdapterConfig
from .errors import ConfigError
from .layers import LAYER_TYPES, AdapterLayer
from .layers.base_ops import is_adaptable
from .layers.quantized import is_quantized_linear, keep_trainable


def name_matches(name: str, patterns: list[str] | str) -> bool:
    """A list matches a module name equal to, or ending in '.' + , an entry; a str is a
    regex that must match the whole name."""
    if isinstance(patterns, str):
        return re.fullmatch(patterns, name) is not None
    return any(name == p or name.endswith("." + p) for p in patterns)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def inject_adapters(model: nn.Module, config: AdapterConfig) -> dict[str, AdapterLayer]:
    """Wrap every matching Linear-like module in place and freeze everything else.

    Fails when a pattern matches nothing, so a typo never trains a model without adapters.
    """
    layer_type = LAYER_TYPES[config.kind]
    targets = [
        name
        for name, module in model.named_modules()
        if name
        and name_matches(name, config.target_modules)
        and is_adaptable(module)
        and not isinstance(module, AdapterLayer)
    ]
    _check_every_pattern_used(model, config.target_modules, targets)
    for param in model.parameters():
        param.requires_grad_(False)
    keep_trainable(model)  # quantized layers: gradients must flow through them
    adapters: dict[str, AdapterLayer] = {}
    for name in targets:
        base = model.get_submodule(name)
        layer = layer_type(base, config)
        ref = next(base.parameters(), None)
        if ref is not None:
            # adapter math in float32 (or the base dtype if it is a float type wider
            # than half precision); device follows the base
            layer.to(device=ref.device)
        _set_submodule(model, name, layer)
        adapters[name] = layer
    _unfreeze_modules_to_save(model, config.modules_to_save)
    for layer in adapters.values():
        for pname, param in layer.named_parameters():
            param.requires_grad_(not pname.startswith("base."))
    return adapters


def _check_every_pattern_used(
    model: nn.Module, patterns: list[str] | str, targets: list[str]
) -> None:
    if not targets:
        raise ConfigError(
            f"target_modules {patterns!r} match no Linear-like module of "
            f"{type(model).__name__}; examples of its module names: "
            f"{_example_linear_names(model)}"
        )
    if isinstance(patterns, list):
        unused = [p for p in patterns if not any(name_matches(t, [p]) for t in targets)]
        if unused:
            raise ConfigError(
                f"target module pattern(s) {unused} match no Linear-like module of "
                f"{type(model).__name__}; examples of its module names: "
                f"{_example_linear_names(model)}"
            )


def _example_linear_names(model: nn.Module, limit: int = 8) -> list[str]:
    seen: list[str] = []
    for name, module in model.named_modules():
        short = name.rsplit(".", 1)[-1]
        if name and is_adaptable(module) and short not in seen:
            seen.append(short)
        if len(seen) >= limit:
            break
    return seen


def _unfreeze_modules_to_save(model: nn.Module, patterns: list[str]) -> None:
    for pattern in patterns:
        matched = [
            module
            for name, module in model.named_modules()
            if name and name_matches(name, [pattern])
        ]
        if not matched:
            raise ConfigError(
                f"modules_to_save entry {pattern!r} matches no module of {type(model).__name__}"
            )
        for module in matched:
            quantized = [n for n, sub in module.named_modules() if is_quantized_linear(sub)]
            if quantized:
                raise ConfigError(
                    f"modules_to_save entry {pattern!r} holds quantized layers ({quantized[:3]}), "
                    "which cannot be trained in full: put adapters on them (target_modules) or "
                    "keep them unquantized (BitsAndBytesConfig(llm_int8_skip_modules=[...]))"
                )
            for param in module.parameters():
                param.requires_grad_(True)
