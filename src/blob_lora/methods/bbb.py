"""Bayes by backprop on both LoRA factors (A and B Gaussian)."""

from .base import Method

METHOD = Method(
    name="bbb",
    adapter_kind="bbb",
    kl_schedule="blob",
    default_eval_samples=(10,),
    table_samples=(0, 10),  # the table also shows BBB's mean
    sampled=True,
    generates=True,
    cost="one run, 2x LoRA parameters; N passes at N samples",
)
