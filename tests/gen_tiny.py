"""Tiny offline tokenizers and models for the generation tests (random weights, seconds)."""

from __future__ import annotations

import torch
from tiny_models import randomize_adapters, tiny_bart, tiny_llama
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from blob_lora import get_blob_model

WORDS = (
    "dialogue summary : . , # person1 person2 hello hi the a cat dog sat on mat is was and "
    "he she they wants to buy book car house meet tomorrow today at office doctor check up "
    "smoke quit asks says about help memo write email work time good bad yes no ok thanks"
).split()


def word_tokenizer(specials: dict[str, int], template: str) -> PreTrainedTokenizerFast:
    """Lower-cased word-level tokenizer over a 64-id vocab: one token per word or symbol.

    ``template`` is the post-processor's single-text template, e.g. "<s> $A".
    """
    first = max(specials.values()) + 1
    vocab = dict(specials) | {w: first + i for i, w in enumerate(WORDS[: 64 - first])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    used = [(name, i) for name, i in specials.items() if name in template.split()]
    tok.post_processor = processors.TemplateProcessing(single=template, special_tokens=used)
    kwargs = {k: t for k, t in (("pad_token", "<pad>"), ("eos_token", "</s>"),
              ("bos_token", "<s>"), ("unk_token", "<unk>")) if t in specials}  # fmt: skip
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


def llama_tokenizer() -> PreTrainedTokenizerFast:
    """Matches tiny_llama: pad 0, eos 1, bos 2; prepends <s> like Llama/Gemma."""
    return word_tokenizer({"<pad>": 0, "</s>": 1, "<s>": 2, "<unk>": 3}, "<s> $A")


def bart_tokenizer() -> PreTrainedTokenizerFast:
    """Matches tiny_bart: bos 0, pad 1, eos 2; wraps text in <s> ... </s> like BART."""
    return word_tokenizer({"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}, "<s> $A </s>")


def t5_tokenizer() -> PreTrainedTokenizerFast:
    """Matches tiny_t5: pad 0, eos 1; appends </s> like T5."""
    return word_tokenizer({"<pad>": 0, "</s>": 1, "<unk>": 2}, "$A </s>")


def tiny_gemma(seed: int = 0) -> Gemma3ForCausalLM:
    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, head_dim=8, max_position_embeddings=64,
        sliding_window=4, pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )  # fmt: skip
    return Gemma3ForCausalLM(cfg).eval()


def tiny_t5(seed: int = 0) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    cfg = T5Config(
        vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1,
        num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    return T5ForConditionalGeneration(cfg).eval()


# name -> (model factory, tokenizer factory, BLoB targets: self/cross attention q, k, v + head)
ARCHS = {
    "llama": (tiny_llama, llama_tokenizer, ["q_proj", "k_proj", "v_proj", "lm_head"]),
    "gemma3": (tiny_gemma, llama_tokenizer, ["q_proj", "k_proj", "v_proj", "lm_head"]),
    "bart": (tiny_bart, bart_tokenizer, ["q_proj", "k_proj", "v_proj", "lm_head"]),
    "t5": (tiny_t5, t5_tokenizer, ["q", "k", "v", "lm_head"]),
}


def blob_model(arch: str, std: float = 0.5, kind: str = "blob"):
    """A BLoB-adapted tiny model with nonzero B and posterior std ``std`` on every A."""
    make_model, make_tok, targets = ARCHS[arch]
    blob = get_blob_model(make_model(), kind=kind, r=4, alpha=8, target_modules=targets)
    randomize_adapters(blob, scale=0.3)
    with torch.no_grad():
        for name, param in blob.named_trainable_parameters():
            if name.endswith("lora_A_g"):
                param.fill_(std**0.5)  # Omega = G * G
    return blob.eval(), make_tok()


def toy_generation_dataset(root, rows: list[dict], n_train: int) -> str:
    """Write ``rows`` ({"id", "dialogue", "summary"}) as train (the first ``n_train``) and
    validation JSONL under ``root``; the dataset mapping of the two, as JSON text."""
    import json

    for split, part in (("train", rows[:n_train]), ("validation", rows[n_train:])):
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return json.dumps({
        "paths": {"train": str(root / "train.jsonl"), "validation": str(root / "validation.jsonl")},
        "source": "dialogue", "target": "summary", "id": "id", "name": "toy",
        "template": "dialogue : {source} summary :",
    })  # fmt: skip
