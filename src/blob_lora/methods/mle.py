"""MLE: plain LoRA, the paper's first baseline."""

from .base import Method

METHOD = Method(name="mle", generates=True, cost="one LoRA run; one pass per prediction")
