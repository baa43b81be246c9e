"""Generation under the posterior, at the posterior mean, and with decoding noise.

Posterior sampling (`sample_outputs`): each input is repeated S times *before* ``generate``,
so every one of the S rows is its own sequence from the first forward call on: in
``sampling("sequence")`` each adapter draws one A per row, and ``frozen_noise`` keeps that
draw for every later call of the same ``generate`` (all decoding steps, with or without the
KV cache). For an encoder-decoder model the encoder runs once on the repeated batch, so row
b of every encoder and decoder adapter belongs to the same weight sample. Transformers'
``num_return_sequences`` is deliberately not used: it expands the encoder *output* after the
encoder has run, which would give the S samples of one input a single shared encoder sample.
Decoding is greedy, so all variation comes from the weights.

``shared_prompt=True`` is the cheaper route (``gen_prompt=shared``): the prompt is read once
per input at the posterior mean (a decoder-only model's KV cache of every prompt token but
the last; an encoder-decoder's encoder output) and repeated for the S rows, which draw their
weight samples from the last prompt token on. Only the prompt's reading is approximated: the
rows draw the same weight samples as the exact route for a seed (the first draw happens at
the first call either way), and where no Bayesian adapter acts on the prompt's reading (a
head-only posterior) the two routes give the same tokens.

Every function seeds torch's RNG with ``seed`` inside ``torch.random.fork_rng``: the same
seed gives the same outputs, and the caller's RNG state is left untouched.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from ..errors import ConfigError
from ..schema import validate_value
from ..schema.types import Positive, PositiveFloat, Probability

GENERATE_KEYS = ("input_ids", "attention_mask")


def is_encoder_decoder(model: nn.Module) -> bool:
    return bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))


def _hf_model(model: nn.Module) -> nn.Module:
    """The transformers model inside a BlobModel (or the model itself)."""
    return getattr(model, "model", model) if hasattr(model, "sampling") else model


@contextlib.contextmanager
def _weights(model: nn.Module, mode: str) -> Iterator[None]:
    """Eval mode (no dropout) and the adapters' sampling mode for the duration."""
    was_training = model.training
    model.eval()
    try:
        if hasattr(model, "sampling"):
            with model.sampling(mode):
                yield
        elif mode == "sequence":
            raise ConfigError(
                "posterior sampling needs a BlobModel with Bayesian adapters; use "
                "decoding_noise_outputs for a plain model"
            )
        else:
            yield
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _prompts(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    missing = [k for k in GENERATE_KEYS if k not in batch]
    if missing:
        raise ConfigError(f"a generation batch needs {list(GENERATE_KEYS)}; missing {missing}")
    mask = batch["attention_mask"]
    if not is_encoder_decoder(model) and not bool(mask[:, -1].all()):
        raise ConfigError(
            "decoder-only generation needs left-padded prompts (new tokens must follow each "
            "prompt directly); build the batch with prompt_batch(...)"
        )
    device = next(model.parameters()).device
    return {k: batch[k].to(device) for k in GENERATE_KEYS}


def _generation_config(model: nn.Module, **overrides: Any) -> tuple[Any, dict[str, Any]]:
    """The model's own generation config (BART's forced BOS, etc.) with our settings, and
    the keyword arguments that are not generation settings (passed on to the model)."""
    config = copy.deepcopy(_hf_model(model).generation_config)
    unused = config.update(**overrides)
    return config, unused


def _read_prompt_at_mean(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> dict:
    """What `shared_prompt` hands to ``generate`` for the un-repeated batch: the prompt read
    at the posterior mean ({} for one-token decoder-only prompts: nothing to share)."""
    hf = _hf_model(model)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    with _weights(model, "mean"), torch.no_grad():
        if is_encoder_decoder(model):
            return {"encoder_outputs": hf.get_encoder()(input_ids=ids, attention_mask=mask)}
        if ids.shape[1] < 2:
            return {}
        # the positions generate gives a left-padded prompt (cumsum of the mask)
        positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        out = hf(
            input_ids=ids[:, :-1],
            attention_mask=mask[:, :-1],
            position_ids=positions[:, :-1],
            use_cache=True,
        )
        return {"past_key_values": out.past_key_values}


def _draw_as_the_encoder_would(model: nn.Module, part: Mapping[str, torch.Tensor]) -> None:
    """Make (and drop) the encoder adapters' weight draws of the exact route: a draw's shape
    is (rows, r, in), whatever the length, so one token per row costs little, and the
    decoder then draws the exact route's samples for the seed."""
    if hasattr(model, "sampling"):
        _hf_model(model).get_encoder()(
            input_ids=part["input_ids"][:, :1], attention_mask=part["attention_mask"][:, :1]
        )


def _rows_of(read: dict, index: torch.Tensor) -> dict:
    """The prompt's reading for the rows whose inputs are `index` (row i of the repeated
    batch reads input i // repeats); a fresh cache, since generate extends one in place."""
    if "past_key_values" in read:
        cache = copy.deepcopy(read["past_key_values"])
        cache.batch_select_indices(index)
        return {"past_key_values": cache}
    if "encoder_outputs" in read:
        enc = copy.copy(read["encoder_outputs"])
        enc["last_hidden_state"] = enc["last_hidden_state"][index]
        return {"encoder_outputs": enc}
    return {}


def generate_ids(
    model: nn.Module,
    batch: Mapping[str, torch.Tensor],
    *,
    repeats: int,
    seed: int,
    mode: str,
    chunk_size: int | None = None,
    shared_prompt: bool = False,
    **generate_kwargs: Any,
) -> torch.Tensor:
    """New tokens on the CPU, shape (inputs, repeats, T), padded with pad_token_id; row
    ``i*repeats+s`` of the generate call is sample s of input i. ``mode``: the adapters'
    sampling mode (``sequence`` for posterior samples, ``mean`` for N=0). ``chunk_size``
    bounds the sequences per ``generate`` call (None: all in one call); each call draws
    fresh weight samples, so do not chunk inside an outer ``frozen_noise`` context.
    ``shared_prompt``: the prompt read once at the posterior mean (module doc)."""
    validate_value(Positive, repeats, "repeats")
    inputs = _prompts(model, batch)
    n = inputs["input_ids"].shape[0]
    expanded = {k: v.repeat_interleave(repeats, dim=0) for k, v in inputs.items()}
    total = n * repeats
    step = total if chunk_size is None else max(1, chunk_size)
    config, model_kwargs = _generation_config(model, **generate_kwargs)
    pad = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id
    if isinstance(pad, list):
        pad = pad[0]
    encdec = is_encoder_decoder(model)
    device = inputs["input_ids"].device
    pieces = []
    read = _read_prompt_at_mean(model, inputs) if shared_prompt else {}
    with _weights(model, mode), _seeded(seed, device), torch.no_grad():
        for lo in range(0, total, step):
            part = {k: v[lo : lo + step] for k, v in expanded.items()}
            if read:
                rows = torch.arange(lo, min(lo + step, total), device=device)
                part |= _rows_of(read, rows // repeats)
            if "encoder_outputs" in part:
                _draw_as_the_encoder_would(model, part)
                del part["input_ids"]  # the encoder has run; generate starts the decoder
            out = model.generate(**part, **model_kwargs, generation_config=config)
            # decoder-only: the prompt comes back first; encoder-decoder: the start token
            pieces.append(out[:, 1:] if encdec else out[:, part["input_ids"].shape[1] :])
    width = max(p.shape[1] for p in pieces)
    new = torch.full((total, width), pad if pad is not None else 0, dtype=torch.long)
    row = 0
    for p in pieces:
        new[row : row + p.shape[0], : p.shape[1]] = p.cpu()
        row += p.shape[0]
    return new.view(n, repeats, width)


def _with_pad(tokenizer: PreTrainedTokenizerBase, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pad finished rows with the tokenizer's pad (or EOS) unless the caller chose one."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return kwargs if "pad_token_id" in kwargs or pad is None else kwargs | {"pad_token_id": pad}


def _decode(tokenizer: PreTrainedTokenizerBase, ids: torch.Tensor) -> list[list[str]]:
    n, s, _ = ids.shape
    texts = tokenizer.batch_decode(ids.reshape(n * s, -1), skip_special_tokens=True)
    texts = [t.strip() for t in texts]
    return [texts[i * s : (i + 1) * s] for i in range(n)]


def _greedy(max_new_tokens: int, use_cache: bool, num_beams: int = 1) -> dict[str, Any]:
    return dict(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=num_beams,
        num_return_sequences=1,
        use_cache=use_cache,
        temperature=1.0,
        top_p=1.0,
        top_k=50,
    )


def sample_outputs(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    batch: Mapping[str, torch.Tensor],
    n_samples: int,
    seed: int,
    max_new_tokens: int,
    *,
    use_cache: bool = True,
    chunk_size: int | None = None,
    shared_prompt: bool = False,
    **generate_kwargs: Any,
) -> list[list[str]]:
    """S = ``n_samples`` outputs per input, each from its own posterior weight sample,
    decoded greedily; one batched ``generate`` call unless ``chunk_size`` splits it.
    ``shared_prompt``: the cheaper route (module doc)."""
    ids = generate_ids(
        model,
        batch,
        repeats=n_samples,
        seed=seed,
        mode="sequence",
        chunk_size=chunk_size,
        shared_prompt=shared_prompt,
        **_with_pad(tokenizer, _greedy(max_new_tokens, use_cache) | generate_kwargs),
    )
    return _decode(tokenizer, ids)


def mean_output(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    batch: Mapping[str, torch.Tensor],
    max_new_tokens: int,
    *,
    num_beams: int = 1,
    use_cache: bool = True,
    **generate_kwargs: Any,
) -> list[str]:
    """The N=0 output: posterior-mean weights, greedy (``num_beams=1``) or beam search."""
    ids = generate_ids(
        model,
        batch,
        repeats=1,
        seed=0,
        mode="mean",
        **_with_pad(tokenizer, _greedy(max_new_tokens, use_cache, num_beams) | generate_kwargs),
    )
    return [row[0] for row in _decode(tokenizer, ids)]


def decoding_noise_outputs(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    batch: Mapping[str, torch.Tensor],
    n_samples: int,
    seed: int,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    use_cache: bool = True,
    chunk_size: int | None = None,
    **generate_kwargs: Any,
) -> list[list[str]]:
    """S outputs per input from token sampling (temperature / top-p / top-k; ``top_k=0``
    switches top-k off) with fixed weights: the posterior mean of a BlobModel, or a plain
    LoRA/MLE model as it is. The decoding-noise baseline of the study. The weights are the
    same for every row, so the prompt is read once and shared: exact, and cheaper."""
    validate_value(PositiveFloat, temperature, "temperature")
    validate_value(Probability, top_p, "top_p")
    settings = dict(
        max_new_tokens=max_new_tokens,
        do_sample=True,
        num_beams=1,
        num_return_sequences=1,
        use_cache=use_cache,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
    )
    ids = generate_ids(
        model,
        batch,
        repeats=n_samples,
        seed=seed,
        mode="mean",
        chunk_size=chunk_size,
        shared_prompt=True,
        **_with_pad(tokenizer, settings | generate_kwargs),
    )
    return _decode(tokenizer, ids)
