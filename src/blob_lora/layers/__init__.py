"""The math of the adapters: layers, KL, sampling modes, restricted rows."""

from .adapters import LAYER_TYPES, AdapterLayer, BBBLayer, BLoBLayer, LoRALayer
from .kl import gaussian_kl
from .rows import rows_forward
from .sampling import MODES, NoiseState

__all__ = [
    "LAYER_TYPES",
    "MODES",
    "AdapterLayer",
    "BBBLayer",
    "BLoBLayer",
    "LoRALayer",
    "NoiseState",
    "gaussian_kl",
    "rows_forward",
]
