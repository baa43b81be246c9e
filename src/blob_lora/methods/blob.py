"""BLoB: Gaussian A, point-estimate B, the authors' KL re-weighting; N=0 and N samples."""

from .base import Method

METHOD = Method(
    name="blob",
    adapter_kind="blob",
    kl_schedule="blob",
    default_eval_samples=(0, 10),
    sampled=True,
    generates=True,
    cost="one run, +r*in parameters per layer, ~LoRA step time; N passes at N samples",
)
