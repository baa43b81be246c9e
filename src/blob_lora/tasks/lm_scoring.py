"""Class logits of a causal LM from its last position, computing only the answer rows.

The output layer of a modern LM has 32k-262k rows; scoring needs a handful. So the body
(decoder without the head) runs once, the hidden state at each row's last real token is
taken, and only the answer-token rows of the head are computed with ``rows_forward`` -
which also works when the head carries a (Bayesian) adapter.
"""

from __future__ import annotations

import functools
import inspect

import torch
from torch import nn

from ..errors import ConfigError
from ..layers.rows import rows_forward
from .base import last_token_index, positions_from_mask


def unwrap_lm(model: nn.Module) -> nn.Module:
    """The Hugging Face model inside wrappers that keep it as ``.model`` (BlobModel)."""
    while not hasattr(model, "get_output_embeddings") and isinstance(
        getattr(model, "model", None), nn.Module
    ):
        model = model.model
    return model


def decoder_body(model: nn.Module) -> nn.Module:
    """The model without its LM head: ``model.<base_model_prefix>`` (LlamaModel,
    GPT2Model, Gemma3TextModel, ...), else ``model.get_decoder()``."""
    prefix = getattr(model, "base_model_prefix", "")
    body = getattr(model, prefix, None) if prefix else None
    if not isinstance(body, nn.Module) or body is model:
        get_decoder = getattr(model, "get_decoder", None)
        body = get_decoder() if callable(get_decoder) else None
    if not isinstance(body, nn.Module) or body is model:
        raise ConfigError(
            f"cannot find the decoder body of {type(model).__name__} (no base_model_prefix "
            "module or get_decoder()); multiple-choice scoring needs a causal LM"
        )
    return body


@functools.cache
def _forward_params(cls: type) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def softcap(logits: torch.Tensor, config) -> torch.Tensor:
    """Apply ``final_logit_softcapping`` (Gemma 2/3) as the model's own head would."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    cap = getattr(text_config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def last_position_logits(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    rows: torch.Tensor,
) -> torch.Tensor:
    """(B, len(rows)) next-token logits at each row's last non-pad position, only ``rows``.

    Position ids are counted from the attention mask, so a left-padded row scores exactly
    as the same row right-padded.
    """
    model = unwrap_lm(model)
    head = model.get_output_embeddings()
    if head is None:
        raise ConfigError(f"{type(model).__name__} has no output layer (get_output_embeddings)")
    body = decoder_body(model)
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
    params = _forward_params(type(body))
    if "use_cache" in params:
        kwargs["use_cache"] = False
    if "position_ids" in params:
        kwargs["position_ids"] = positions_from_mask(attention_mask)
    hidden = body(**kwargs)[0]
    last = last_token_index(attention_mask)
    h_last = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    rows = rows.to(h_last.device)
    if not all(p.dtype == torch.float32 for p in head.parameters()):
        return softcap(rows_forward(head, h_last, rows), model.config)
    # An fp32 head scores its few answer rows in fp32 even under bf16 autocast: rounding
    # the logits to bf16 moved Gemma's OBQA NLL by 0.012, more than methods differ by.
    with torch.autocast(device_type=h_last.device.type, enabled=False):
        return softcap(rows_forward(head, h_last.float(), rows), model.config)
