"""Decoding under the posterior on tiny random Llama, Gemma-3, BART and T5 models.

The core property: each generated sequence sees one weight sample (one row of noise in every
adapter, encoder and decoder alike) for all its decoding steps, so the KV cache changes
nothing, and replaying a row's noise alone reproduces that row's tokens.
"""

from __future__ import annotations

import pytest
import torch
from gen_tiny import ARCHS, blob_model

from blob_lora import get_blob_model
from blob_lora.errors import ConfigError
from blob_lora.generation import (
    GenerationExample,
    decoding_noise_outputs,
    generate_ids,
    mean_output,
    prompt_batch,
    sample_outputs,
)

ENCDEC = {"bart", "t5"}
TEMPLATE = "dialogue : {source} summary :"
EXAMPLES = [
    GenerationExample("hello the cat sat on the mat", ("cat sat",), "a", TEMPLATE),
    GenerationExample("hi", ("ok",), "b", TEMPLATE),
]


def _setup(arch: str, std: float = 0.5):
    blob, tok = blob_model(arch, std=std)
    batch = prompt_batch(EXAMPLES, tok, 32, encoder_decoder=arch in ENCDEC)
    return blob, tok, batch


def _ids(blob, tok, batch, *, seed=0, use_cache=True, repeats=3, mode="sequence",
         chunk_size=None):  # fmt: skip
    return generate_ids(
        blob, batch, repeats=repeats, seed=seed, mode=mode, max_new_tokens=6,
        do_sample=False, use_cache=use_cache, pad_token_id=tok.pad_token_id,
        chunk_size=chunk_size,
    )  # fmt: skip


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_kv_cache_on_and_off_give_the_same_tokens_and_samples_differ(arch):
    blob, tok, batch = _setup(arch)
    with_cache = _ids(blob, tok, batch, use_cache=True)
    without = _ids(blob, tok, batch, use_cache=False)
    assert with_cache.shape[:2] == (2, 3)
    assert torch.equal(with_cache, without)
    # sigma is large: the 3 samples of an input are not all the same sequence
    assert any(len({tuple(s.tolist()) for s in with_cache[i]}) > 1 for i in range(2))


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_each_row_is_one_weight_sample_shared_by_encoder_and_decoder(arch):
    """Capture every adapter's frozen noise during one batched call, then replay the noise
    row of one sequence alone (batch of 1): the same tokens come out. Encoder adapters hold
    one row per sequence (inputs x samples), not one per input."""
    blob, tok, batch = _setup(arch)
    n, s = 2, 3
    with blob.frozen_noise():  # outer context: the caches survive generate()
        together = _ids(blob, tok, batch, repeats=s)
        noise = {name: layer.noise.cache["A"].clone() for name, layer in blob.adapters().items()}
    assert all(v.shape[0] == n * s for v in noise.values())
    if arch in ENCDEC:
        enc = [v for k, v in noise.items() if ".encoder." in f".{k}"]
        assert enc and all(not torch.equal(v[0], v[1]) for v in enc)
    for row in (1, 4):  # input 0 sample 1, input 1 sample 1
        i, j = divmod(row, s)
        single = {k: v[i : i + 1] for k, v in batch.items()}
        with blob.frozen_noise():
            for name, layer in blob.adapters().items():
                layer.noise.cache["A"] = noise[name][row : row + 1]
            alone = _ids(blob, tok, single, repeats=1, seed=123, use_cache=(row == 1))
        width = min(alone.shape[-1], together.shape[-1])
        assert torch.equal(alone[0, 0, :width], together[i, j, :width])


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_same_seed_same_outputs_other_seed_other_outputs(arch):
    blob, tok, batch = _setup(arch)
    state = torch.get_rng_state()
    first = sample_outputs(blob, tok, batch, n_samples=4, seed=7, max_new_tokens=6)
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is untouched
    again = sample_outputs(blob, tok, batch, n_samples=4, seed=7, max_new_tokens=6)
    other = sample_outputs(blob, tok, batch, n_samples=4, seed=8, max_new_tokens=6)
    assert first == again and first != other
    assert len(first) == 2 and all(len(outs) == 4 for outs in first)
    chunked = sample_outputs(blob, tok, batch, 4, 7, 6, chunk_size=3)
    assert len(chunked) == 2 and all(len(outs) == 4 for outs in chunked)


@pytest.mark.parametrize("arch", ["gemma3", "bart"])
def test_zero_sigma_samples_equal_the_mean_output(arch):
    blob, tok, batch = _setup(arch, std=0.0)
    mean = mean_output(blob, tok, batch, max_new_tokens=6)
    samples = sample_outputs(blob, tok, batch, n_samples=2, seed=0, max_new_tokens=6)
    assert [outs[0] for outs in samples] == mean and [outs[1] for outs in samples] == mean
    beams = mean_output(blob, tok, batch, max_new_tokens=6, num_beams=3)
    assert len(beams) == 2 and all(isinstance(t, str) for t in beams)


def test_left_padded_batch_matches_each_prompt_alone():
    blob, tok, batch = _setup("llama")
    together = _ids(blob, tok, batch, repeats=1, mode="mean")
    for i, ex in enumerate(EXAMPLES):
        alone = _ids(
            blob, tok, prompt_batch([ex], tok, 32, encoder_decoder=False), repeats=1, mode="mean"
        )
        width = min(alone.shape[-1], together.shape[-1])
        assert torch.equal(alone[0, 0, :width], together[i, 0, :width])


@pytest.mark.parametrize("arch", ["llama", "bart"])
def test_decoding_noise_baseline_is_seeded(arch):
    make_model, make_tok, targets = ARCHS[arch]
    tok = make_tok()
    batch = prompt_batch(EXAMPLES, tok, 32, encoder_decoder=arch in ENCDEC)
    lora = get_blob_model(make_model(), kind="lora", r=4, target_modules=targets).eval()
    for model in (lora, make_model()):  # a LoRA BlobModel and a plain transformers model
        a = decoding_noise_outputs(model, tok, batch, 3, seed=1, max_new_tokens=6, top_p=0.95)
        b = decoding_noise_outputs(model, tok, batch, 3, seed=1, max_new_tokens=6, top_p=0.95)
        c = decoding_noise_outputs(model, tok, batch, 3, seed=2, max_new_tokens=6, top_p=0.95)
        assert a == b and a != c


def test_clear_errors():
    blob, tok, batch = _setup("llama")
    right = prompt_batch(EXAMPLES, tok, 32, encoder_decoder=True)  # right padding
    with pytest.raises(ConfigError, match="left-padded"):
        sample_outputs(blob, tok, right, 2, 0, 4)
    with pytest.raises(ConfigError, match="BlobModel"):
        sample_outputs(ARCHS["llama"][0](), tok, batch, 2, 0, 4)
    with pytest.raises(ConfigError, match="repeats: Input should be greater than or equal to 1"):
        sample_outputs(blob, tok, batch, 0, 0, 4)


def _zero_std(blob, where):
    """Omega = 0 on the adapters whose name satisfies `where`: they predict at their mean."""
    with torch.no_grad():
        for name, param in blob.named_trainable_parameters():
            if name.endswith("lora_A_g") and where(name):
                param.zero_()


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_the_shared_prompt_route_is_exact_where_no_noise_reads_the_prompt(arch):
    """gen_prompt=shared reads the prompt once at the posterior mean. At N=0 it changes
    nothing; where only the head (decoder-only) or only the decoder (encoder-decoder) is
    uncertain, the prompt's reading has no noise to lose, and the samples are the exact
    route's token for token (the same weight samples are drawn for a seed)."""
    blob, tok, batch = _setup(arch)
    mean = _ids(blob, tok, batch, mode="mean")
    assert torch.equal(mean, _shared(blob, tok, batch, mode="mean"))
    if arch in ENCDEC:
        _zero_std(blob, lambda name: "encoder" in name)
    else:
        _zero_std(blob, lambda name: "lm_head" not in name)
    exact = _ids(blob, tok, batch, repeats=4)
    assert any(len({tuple(s.tolist()) for s in exact[i]}) > 1 for i in range(2))  # samples differ
    assert torch.equal(exact, _shared(blob, tok, batch, repeats=4))
    chunked = _ids(blob, tok, batch, repeats=4, chunk_size=3)  # each call draws afresh
    assert torch.equal(chunked, _shared(blob, tok, batch, repeats=4, chunk_size=3))


@pytest.mark.parametrize("arch", ["llama", "bart"])
def test_the_shared_prompt_route_differs_where_noise_reads_the_prompt(arch):
    """With noise in every layer the prompt's reading matters: the routes part ways."""
    blob, tok, batch = _setup(arch)
    assert not torch.equal(_ids(blob, tok, batch, repeats=4), _shared(blob, tok, batch, repeats=4))


def _shared(blob, tok, batch, *, repeats=3, mode="sequence", chunk_size=None):
    return generate_ids(
        blob, batch, repeats=repeats, seed=0, mode=mode, max_new_tokens=6, do_sample=False,
        pad_token_id=tok.pad_token_id, shared_prompt=True, chunk_size=chunk_size,
    )  # fmt: skip


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_decoding_noise_reads_the_prompt_once_and_gives_the_same_tokens(arch):
    """The decoding-noise rows share one set of weights: reading the prompt once (as
    decoding_noise_outputs does) gives token for token what reading it per row gives."""
    from blob_lora.generation.decode import _greedy

    blob, tok, batch = _setup(arch)
    settings = _greedy(6, True) | {"do_sample": True, "top_p": 0.9, "top_k": 0}
    per_row, shared = (
        generate_ids(blob, batch, repeats=4, seed=3, mode="mean", shared_prompt=flag,
                     pad_token_id=tok.pad_token_id, **settings)
        for flag in (False, True)
    )  # fmt: skip
    assert any(len({tuple(s.tolist()) for s in per_row[i]}) > 1 for i in range(2))
    assert torch.equal(per_row, shared)
