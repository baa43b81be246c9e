"""Where a Laplace-LoRA run's predictive variance comes from (the diagnostic behind
experiments/laplace_gemma.md).

    .venv/bin/python -m experiments.laplace_variance RUN_CONFIG.json [scalar|ab|layerwise]

Runs `blob train` on a post-hoc `la` config and prints, after the fit: the evidence and
prior precisions of each prior structure, the weight norms, and over the evaluation the
mean logit variance per example split into lora_A's and lora_B's share, and (two classes)
the variance of the logit difference - the only part the softmax sees.
"""

from __future__ import annotations

import sys
from collections import defaultdict

from blob_lora import cli
from blob_lora.methods import laplace

STRUCTURES = ("scalar", "ab", "layerwise")


def main(config: str, structure: str = "scalar") -> None:
    stats: dict[str, float] = defaultdict(float)
    post_train = laplace.LaplaceLoRA.post_train
    function_variance = laplace.KronLaplace.function_variance

    def traced_post_train(self, model, context):
        model = post_train(self, model, context)
        post = model.method_state
        for st in STRUCTURES:
            found = post.optimize_prior_precision(st)
            values = list(found.values()) if isinstance(found, dict) else [found]
            print(
                f"{st:9s} evidence {post.log_marginal_likelihood():.1f}, "
                f"prior precision {min(values):.4g} to {max(values):.4g}"
            )
        post.optimize_prior_precision(structure)
        for which in "ab":
            norm = sum(v for k, v in post.theta_sq.items() if k[1] == which)
            count = sum(e.numel() for k, e in post._eigs.items() if k[1] == which)
            print(f"lora_{which.upper()}: |w|^2 {norm:.4g} over {count} curvature directions")
        return model

    def traced_variance(self, model, calls, n, c):
        var = function_variance(self, model, calls, n, c)
        chosen = self.prior_precision
        for which in "ab":  # the other group's prior pinned to ~0 variance
            self.prior_precision = {
                k: (self.delta(k) if k[1] == which else 1e30) for k in self._eigs
            }
            part = function_variance(self, model, calls, n, c)
            stats[f"lora_{which.upper()}"] += float(part.diagonal(dim1=-2, dim2=-1).sum())
            self.prior_precision = chosen
        stats["total"] += float(var.diagonal(dim1=-2, dim2=-1).sum())
        if c == 2:
            stats["difference"] += float((var[:, 0, 0] + var[:, 1, 1] - 2 * var[:, 0, 1]).sum())
        stats["n"] += n
        return var

    laplace.LaplaceLoRA.post_train = traced_post_train
    laplace.KronLaplace.function_variance = traced_variance
    cli.main(["train", "--config", config])
    n = max(stats.pop("n", 0), 1)
    print("mean logit variance per example (summed over classes):")
    for key, value in stats.items():
        print(f"  {key:10s} {value / n:.4g}")


if __name__ == "__main__":
    main(*sys.argv[1:])
