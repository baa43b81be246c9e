"""A small byte-level BPE tokenizer trained in memory, for causal-LM task tests offline."""

from __future__ import annotations

import functools

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

CORPUS = [
    "Question: Which of these is a source of energy for plants?\nA. soil\nB. sunlight\nAnswer: B",
    "Passage: The river flows north.\nQuestion: does the river flow north?\nAnswer: yes",
    "Passage: Cats are mammals.\nQuestion: is a cat a bird?\nAnswer: no",
] * 20 + ["Answer: A", "Answer: B", "Answer: C", "Answer: D", "Answer: E"] * 40


@functools.cache
def tiny_bpe(bos: bool = True, vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 style) with " A".." E", " yes", " no" as single tokens.

    ``bos=True`` prepends <s> like Llama/Gemma tokenizers; ``bos=False`` adds nothing
    (GPT-2). Pad is a separate <pad> token.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
