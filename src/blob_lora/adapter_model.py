"""`BlobModel`: a transformers model with adapters injected, and the handles a user needs.

It forwards calls to the wrapped model, so it drops into existing code; what it adds is
sampling control, the KL term, parameter groups for the optimizers, and adapter I/O.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .config import AdapterConfig
from .errors import ConfigError
from .inject import inject_adapters
from .layers import MODES, AdapterLayer, BLoBLayer


class BlobModel(nn.Module):
    """A model whose target layers carry LoRA / BLoB / BBB adapters."""

    def __init__(self, model: nn.Module, config: AdapterConfig) -> None:
        super().__init__()
        self.model = model
        self.adapter_config = config
        self._adapter_names = list(inject_adapters(model, config))
        # what the method learned beyond the adapter weights, read and written only by the
        # method that owns it (methods/*.py): an ensemble's members, Laplace's posterior,
        # TFB's beta; None for methods that learn nothing else
        self.method_state: Any = None
        self.train(model.training)  # new adapter layers follow the model's train/eval mode

    # -- passthrough ----------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """`model.generate` with the noise frozen: each sequence keeps one weight sample
        through every decoding step (KV cache included)."""
        with self.frozen_noise():
            return self.model.generate(*args, **kwargs)

    @property
    def accepts_loss_kwargs(self) -> bool:
        """What the wrapped model says (transformers.Trainer reads this to decide whether
        the loss is already normalized for gradient accumulation); our forward's **kwargs
        must not make the Trainer believe the model handles it when it does not."""
        declared = getattr(self.model, "accepts_loss_kwargs", None)
        if declared is not None:
            return bool(declared)
        params = inspect.signature(self.model.forward).parameters.values()
        return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)

    @property
    def config(self) -> Any:
        return getattr(self.model, "config", None)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- adapters -------------------------------------------------------------------------
    def adapters(self) -> dict[str, AdapterLayer]:
        return {name: self.model.get_submodule(name) for name in self._adapter_names}

    @property
    def is_bayesian(self) -> bool:
        return any(layer.is_bayesian for layer in self.adapters().values())

    def kl(self) -> torch.Tensor:
        """Sum of the closed-form KL of every Bayesian factor, in float64."""
        from .sharding import full

        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for layer in self.adapters().values():  # sharded layers' KL summed over processes
            total = total + full(layer.kl())
        return total

    @contextlib.contextmanager
    def sampling(self, mode: str) -> Iterator[None]:
        """Temporarily set how Bayesian layers draw weights: auto | mean | sequence | flipout."""
        if mode not in MODES:
            raise ConfigError(f"sampling mode {mode!r} is unknown; use one of {MODES}")
        layers = list(self.adapters().values())
        previous = [layer.noise.mode for layer in layers]
        for layer in layers:
            layer.noise.mode = mode
        try:
            yield
        finally:
            for layer, old in zip(layers, previous, strict=True):
                layer.noise.mode = old

    @contextlib.contextmanager
    def frozen_noise(self) -> Iterator[None]:
        """Keep each layer's first noise draw until exit (one sample per sequence)."""
        layers = list(self.adapters().values())
        already = [layer.noise.frozen for layer in layers]
        for layer in layers:
            layer.noise.frozen = True
        try:
            yield
        finally:
            for layer, was in zip(layers, already, strict=True):
                layer.noise.frozen = was
                if not was:
                    layer.noise.cache.clear()

    @torch.no_grad()
    def reset_adapters(self) -> None:
        """Re-initialize every adapter and fully trained module (a new ensemble member)."""
        for layer in self.adapters().values():
            layer.reset_adapter()
        init = getattr(self.model, "_init_weights", None)
        for pattern in self.adapter_config.modules_to_save:
            for name, module in self.model.named_modules():
                if name == pattern or name.endswith("." + pattern):
                    for sub in module.modules():
                        if init is not None and isinstance(sub, nn.Linear):
                            init(sub)
                        elif hasattr(sub, "reset_parameters"):
                            sub.reset_parameters()

    # -- parameters -----------------------------------------------------------------------
    def named_trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                yield name, param

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Split trainable parameters into means (M, B, heads) and std parameters (G).

        The authors' optimizer scheme moves G only with SGD; the means also get AdamW.
        """
        groups: dict[str, list[nn.Parameter]] = {"mean": [], "std": []}
        for name, param in self.named_trainable_parameters():
            is_std = name.endswith("lora_A_g") or name.endswith("lora_B_g")
            groups["std" if is_std else "mean"].append(param)
        return groups

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for _, p in self.named_trainable_parameters())

    def bayesian_layers(self) -> dict[str, BLoBLayer]:
        return {n: m for n, m in self.adapters().items() if isinstance(m, BLoBLayer)}

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Every trainable tensor (adapters and modules_to_save), keyed by model path;
        whole tensors also under sharding=fsdp (then every process must call it)."""
        from .sharding import full

        return {n: full(p.detach()) for n, p in self.named_trainable_parameters()}


def get_blob_model(
    model: nn.Module, config: AdapterConfig | None = None, **kwargs: Any
) -> BlobModel:
    """Wrap `model` with adapters: `get_blob_model(model, kind="blob", target_modules=[...])`."""
    if config is None:
        config = AdapterConfig(**kwargs)
    elif kwargs:
        raise ConfigError("pass either an AdapterConfig or keyword arguments, not both")
    return BlobModel(model, config)
