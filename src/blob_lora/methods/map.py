"""MAP: LoRA with decoupled weight decay 1e-5 (a Gaussian prior on the adapter weights)."""

from .base import Method

METHOD = Method(
    name="map",
    weight_decay=1e-5,
    generates=True,
    cost="one LoRA run; one pass per prediction",
)
