"""MLE: plain LoRA, the paper's first baseline."""

from .base import Method

METHOD = Method(name="mle", cost="one LoRA run; one pass per prediction")
