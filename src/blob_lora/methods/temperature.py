"""Temperature scaling (Guo et al., ICML 2017): one scalar T per predictive, fitted by NLL
on training rows that no method trained on (the run's `calib_fraction` carve).

The simplest rival of every Bayesian method, and the first thing a practitioner tries.
`ts` tempers MLE's predictive; `blob-ts` tempers BLoB's N-sample predictive, to show
whether the two combine. T multiplies the log of the *final* predictive,
``p_T ∝ p^(1/T)``: for one pass that is exactly ``softmax(logits / T)``; for N samples it
tempers the averaged probabilities, which is what is scored. Each N gets its own T, fitted
on that N's predictive (a temperature fitted at N=10 is wrong for N=0).

The samples returned beside the predictive are left untempered: their mutual information
measures how much the posterior's draws disagree, which a temperature does not change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..adapter_model import BlobModel
from ..data.batching import batch_seed
from ..errors import ConfigError
from ..predictive import predictive_probs
from .base import Method, PostTrainContext

log = logging.getLogger(__name__)

LOG_T_BOUND = 5.0  # T in [e^-5, e^5]: past it the predictive is one-hot or uniform anyway


def fit_temperature(log_probs: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 that minimizes the mean NLL of ``log_softmax(log_probs / T)``.

    The NLL is convex in 1/T, so LBFGS on log(1/T) from T=1 finds the one minimum.
    """
    if log_probs.ndim != 2 or labels.shape != log_probs.shape[:1] or labels.numel() == 0:
        raise ValueError(f"need (n, C) log-probs and n labels, got {tuple(log_probs.shape)}")
    z = log_probs.detach().double()
    y = labels.detach().long()
    log_inv_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_inv_t], lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z * log_inv_t.clamp(-LOG_T_BOUND, LOG_T_BOUND).exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(torch.exp(-log_inv_t.detach().clamp(-LOG_T_BOUND, LOG_T_BOUND)))


def temper(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(log p / T)``: the predictive at temperature T (T=1 returns p as it is).
    A zero stays zero: an answer a question does not have (padding) gets no mass at any T."""
    if temperature == 1.0:
        return probs
    return torch.softmax(probs.double().log() / temperature, -1).to(probs.dtype)


@dataclass
class TemperatureState:
    """The fitted temperature of each N, and the rows it was fitted on."""

    by_samples: dict[int, float]
    n_calib: int

    def temperature(self, n_samples: int) -> float:
        if n_samples not in self.by_samples:
            raise ConfigError(
                f"no temperature was fitted for N={n_samples} (fitted: "
                f"{sorted(self.by_samples)}); evaluate with --samples "
                f"{' '.join(map(str, sorted(self.by_samples)))}, or ask for N={n_samples} "
                "in `blob eval --samples`, which fits it again"
            )
        return self.by_samples[n_samples]


@dataclass(frozen=True)
class TemperatureScaled(Method):
    """A method's predictive with a temperature fitted per N on the calibration carve."""

    posterior_saved: bool = False  # `blob eval` fits T again, for the N it is asked for

    def post_train(self, model: BlobModel, context: PostTrainContext) -> BlobModel:
        if context.n_calib == 0:
            raise ConfigError(
                f"{self.name} fits its temperature on training rows held out of training, "
                "and this run holds none out: set calib_fraction (e.g. 0.2), and train the "
                "run it starts from (init_from) with the same calib_fraction"
            )
        model.eval()
        temps = {}
        for n in context.eval_samples:
            log_probs, labels = _calib_predictive(model, context, n)
            temps[n] = fit_temperature(log_probs, labels)
            log.info("%s: T=%.4f for N=%d on %d held-out rows", self.name, temps[n], n, len(labels))
        model.method_state = TemperatureState(temps, context.n_calib)
        return model

    def predict(
        self, model: BlobModel, class_logits: Callable[[], torch.Tensor], n_samples: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        probs, samples = super().predict(model, class_logits, n_samples)
        return temper(probs, model.method_state.temperature(n_samples)), samples

    def map_source_predictive(
        self, model: BlobModel, probs: torch.Tensor, n_samples: int
    ) -> torch.Tensor | None:
        """The source's weights and noise, tempered: exactly `predict`'s output."""
        return temper(probs, model.method_state.temperature(n_samples))

    def row_extras(self, model: BlobModel, n_samples: int) -> dict[str, float]:
        state = model.method_state
        return {"temperature": state.temperature(n_samples)} if state else {}


@torch.no_grad()
def _calib_predictive(
    model: BlobModel, context: PostTrainContext, n_samples: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(log predictive, labels) of the held-out rows; batch k's noise from its own seed,
    as in evaluation, so the fit is reproducible and leaves the global stream alone."""
    log_probs, labels = [], []
    bar = tqdm(
        total=context.n_calib,
        desc=f"fit T on held-out rows N={n_samples}",
        unit="ex",
        disable=dist.is_available() and dist.is_initialized() and dist.get_rank() != 0,
        dynamic_ncols=True,
        leave=False,
    )
    with bar:
        for k, batch in enumerate(context.calib_batches()):
            devices = [batch["labels"].device] if batch["labels"].is_cuda else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(batch_seed(context.seed, k))
                probs = predictive_probs(model, lambda b=batch: context.class_logits(b), n_samples)
            log_probs.append(probs.double().clamp_min(1e-300).log().cpu())
            labels.append(batch["labels"].cpu())
            bar.update(len(batch["labels"]))
    return torch.cat(log_probs), torch.cat(labels)


TS = TemperatureScaled(
    name="ts",
    post_hoc_of="mle",
    cost="a trained LoRA (MLE) plus one pass over the held-out rows; one pass per prediction",
)
BLOB_TS = TemperatureScaled(
    name="blob-ts",
    adapter_kind="blob",
    kl_schedule="blob",
    default_eval_samples=(0, 10),
    sampled=True,
    post_hoc_of="blob",
    cost="a trained BLoB run plus N passes over the held-out rows; N passes at N samples",
)
