"""`transformers.Trainer` integration: the KL term and its schedule in `compute_loss`.

For users who keep their Trainer set-up: wrap the model with `get_blob_model`, pass the
BlobModel to `BlobTrainer` with a `KLSchedule`, train as usual. This is the single-
optimizer ELBO scheme (Trainer's AdamW moves every adapter parameter); the authors'
two-optimizer scheme lives in the blob-lora runner.
"""

from __future__ import annotations

import inspect
from typing import Any

from transformers import Trainer

from .adapter_model import BlobModel
from .kl_plan import KLSchedule


class BlobTrainer(Trainer):
    """A Trainer whose loss is the model's loss plus `pi_step * KL`."""

    def __init__(self, *args: Any, kl_schedule: KLSchedule, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Every micro-batch loss is the model's own mean NLL plus the step's KL term, and
        # the Trainer divides it by the accumulation steps: NLL and KL then count once per
        # optimizer step. (Passing num_items_in_batch would leave the loss undivided, which
        # is right only for models that normalize by it - not BERT-style classifiers.)
        self.model_accepts_loss_kwargs = False
        self.kl_schedule = kl_schedule
        self._last_kl = 0.0

    def _blob(self) -> BlobModel:
        model = self.model
        while not isinstance(model, BlobModel) and hasattr(model, "module"):
            model = model.module
        if not isinstance(model, BlobModel):
            raise TypeError("BlobTrainer needs a model wrapped with blob_lora.get_blob_model")
        return model

    def _set_signature_columns_if_needed(self) -> None:
        # BlobModel.forward takes *args/**kwargs: read the wrapped model's signature instead
        if self._signature_columns is None:
            params = inspect.signature(self._blob().model.forward).parameters
            self._signature_columns = [*params, "label", "label_ids", *self.label_names]

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):  # noqa: ANN001
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, **kwargs)
        blob = self._blob()
        if blob.is_bayesian and model.training:
            weight = self.kl_schedule.weight(self.state.global_step)
            kl = blob.kl()
            self._last_kl = float(kl.detach())
            loss = loss + (weight * kl).to(loss.dtype)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs:
            logs = {**logs, "kl": self._last_kl}
        super().log(logs, *args, **kwargs)
