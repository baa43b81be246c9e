"""blob-lora: Bayesian LoRA (BLoB) fine-tuning for transformers models."""

from .adapter_io import export_peft, from_peft, load_adapter, save_adapter
from .adapter_model import BlobModel, get_blob_model
from .config import AdapterConfig
from .errors import BlobLoraError, CheckpointError, ConfigError
from .kl_schedule import KLSchedule
from .optim import AdapterOptimizer, OptimConfig
from .predictive import predictive_probs

__all__ = [
    "AdapterConfig",
    "AdapterOptimizer",
    "BlobLoraError",
    "BlobModel",
    "CheckpointError",
    "ConfigError",
    "KLSchedule",
    "OptimConfig",
    "export_peft",
    "from_peft",
    "get_blob_model",
    "load_adapter",
    "predictive_probs",
    "save_adapter",
]
__version__ = "0.1.0"
