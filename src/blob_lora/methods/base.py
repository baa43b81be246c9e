"""What a method is: how it builds its adapters, trains, and turns passes into probabilities.

A method never reads files and never knows the task: it gets a model, a
`class_logits()` callable for one batch, and returns class probabilities. What it learns
beyond the adapter weights lives in `BlobModel.method_state`, which only it reads.

A method trains one adapter or several (`parts`: an ensemble's members); the runner gives
it `train_part(part, init_seed, data_seed)` and `load_part(part)`, which do the files.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import torch
from torch import nn

from ..adapter_model import BlobModel
from ..config import AdapterConfig
from ..predictive import predictive_probs
from ..schema import validate_value

# train_part(part, init_seed, data_seed): optimize (or resume, or load a finished) adapter
# of the run's sub-directory `part` ("" is the run itself) from the model's current weights
TrainPart = Callable[[str, int, int], None]
# load_part(part): load the finished adapter of `part` into the model
LoadPart = Callable[[str], None]


@dataclass
class PostTrainContext:
    """What a post-hoc method (Laplace, TFB) may use after training, without reading files.

    `train_batches()` yields the training set once in a fixed order (batches with a
    "labels" tensor); `anchor_batches()` a fixed subset of it; `class_logits(batch)`
    returns (B, C) logits of the current model for a batch (differentiable when called
    with grad enabled). `calib_batches()` yields the training rows held out of training
    (calib_fraction; empty when none were); `eval_samples` are the N the run predicts
    with, so a fit that depends on the predictive (temperature) can fit one per N.
    """

    train_batches: Callable[[], Iterable[dict[str, torch.Tensor]]]
    anchor_batches: Callable[[], Iterable[dict[str, torch.Tensor]]]
    class_logits: Callable[[dict[str, torch.Tensor]], torch.Tensor]
    n_train: int
    seed: int = 0
    calib_batches: Callable[[], Iterable[dict[str, torch.Tensor]]] = lambda: iter(())
    n_calib: int = 0
    eval_samples: tuple[int, ...] = (0,)


@functools.cache
def _option_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


@dataclass(frozen=True)
class Method:
    """A training/prediction recipe. Subclass or instantiate with other defaults."""

    name: str
    adapter_kind: str = "lora"
    kl_schedule: str = "none"
    weight_decay: float | None = None  # None: the run's setting
    adapter_dropout: float | None = None  # None: the run's setting
    default_eval_samples: tuple[int, ...] = (0,)
    members: int = 1  # independently trained adapters (`parts`); >1: the ensemble
    posterior_saved: bool = True  # False: `blob eval` redoes post_train on the train data
    cost: str = "one LoRA training run; one pass per prediction"
    # -- what the rest of the product knows about the method: here, nowhere else --------
    # a post-hoc method fitted on a finished run of this method (same task and seed): the
    # table starts it from there (init_from, no further training)
    post_hoc_of: str | None = None
    # the method whose run of the same seed is this one's first member (the ensemble's
    # member 0 is the MLE run: same settings, init and data order)
    member_zero_from: str | None = None
    table_samples: tuple[int, ...] | None = None  # the paper table's N; None: the default
    sampled: bool = False  # N changes its prediction: labels name N, N=0 included
    generates: bool = False  # has a generation path (task=generate)
    sharding_refusal: str | None = None  # why sharding=fsdp cannot run it; None: it can
    # the method_options protocol=paper sets (the authors' code)
    paper_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    posterior_trained: bool = True  # False: sigma is set post hoc (no init sigma to compare)
    # of this class's fields, those a user may set through method_options (a subclass's
    # own fields are all settable; these base ones are the recipe, not options)
    settable: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        """A method's own settings hold what their annotations allow (the schema's types),
        however the instance was made: `get_method`, `dataclasses.replace` or a constructor."""
        hints = _option_types(type(self))
        for name in self.option_names():
            validate_value(hints[name], getattr(self, name), f"method_options.{name}")

    @property
    def table_n(self) -> tuple[int, ...]:
        """The N the paper table evaluates this method at."""
        return self.table_samples if self.table_samples is not None else self.default_eval_samples

    def label(self, n_samples: int) -> str:
        """How tables name this method at N (the N shown where it changes the prediction)."""
        return f"{self.name} (N={n_samples})" if self.sampled or n_samples else self.name

    def option_names(self) -> set[str]:
        """What `method_options` may set: the method's own settings, not its recipe."""
        base = {f.name for f in fields(Method)}
        return {f.name for f in fields(self)} - base | set(self.settable)

    def adapter_config(self, base: AdapterConfig) -> AdapterConfig:
        changes: dict = {"kind": self.adapter_kind}
        if self.adapter_dropout is not None:
            changes["dropout"] = self.adapter_dropout
        return replace(base, **changes)

    def build(self, model: nn.Module, adapter: AdapterConfig) -> BlobModel:
        return BlobModel(model, self.adapter_config(adapter))

    def parts(self) -> list[str]:
        """Sub-directories of a run holding one trained adapter each ("": the run's own)."""
        return [""]

    def train_adapters(self, model: BlobModel, train_part: TrainPart, seed: int) -> None:
        """Train every adapter the method needs; one, on the run's seed and data order."""
        train_part("", seed, seed)

    def load_adapters(self, model: BlobModel, load_part: LoadPart) -> None:
        """Restore what `train_adapters` left, from a finished run."""
        load_part("")

    def post_train(self, model: BlobModel, context: PostTrainContext) -> BlobModel:
        """Hook for post-hoc methods; returns the model that predicts (may be new)."""
        return model

    def map_source_predictive(
        self, model: BlobModel, probs: torch.Tensor, n_samples: int
    ) -> torch.Tensor | None:
        """A post-hoc method's predictive at N as a fixed map of its source run's (which the
        evaluation then reuses, `run.reuse`), or None: it must predict again."""
        return None

    def row_extras(self, model: BlobModel, n_samples: int) -> dict[str, float]:
        """What a results row of this N reports beyond the metrics (e.g. a fitted
        temperature); nothing by default."""
        return {}

    def predict(
        self, model: BlobModel, class_logits: Callable[[], torch.Tensor], n_samples: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(probs (B, C), per-sample probs (S, B, C)); n_samples=0 is the mean."""
        return predictive_probs(model, class_logits, n_samples, return_samples=True)
