"""Why BLoB's N=10 barely differs from N=0 in the table: the test-time noise, on the same
trained weights.

    .venv/bin/python -m experiments.noise_at_test RUN_DIR [RUN_DIR ...]   # finished blob runs
    .venv/bin/python -m experiments.noise_at_test --report                 # -> experiments/results/noise_at_test.*

The table's BLoB runs (protocol=paper) train and predict with the authors' flipout: one
noise matrix per forward call, decorrelated per token by random signs. Each token of an
input then sees its own weight sample, and everything that pools over tokens (attention,
the head's first token after several layers) averages that noise down, so N samples of
flipout may differ far less than N samples of whole networks. `sequence` draws one weight
sample per input, shared by all its tokens: a sample of the posterior's network, as the
paper's predictive (an average over weights) means. Each run is predicted at N=0, and at
N=10 under both modes; the rows give ACC / ECE / NLL and the mean mutual information (how
much the samples disagree). Nothing is retrained: the weights and the posterior are the
run's. Results: one JSON row per (run, mode), appended to experiments/results/noise_at_test.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.dev_runs import measured_on

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results" / "noise_at_test.json"
N = 10
MODES = ("flipout", "sequence")


def measure(run_dir: Path) -> list[dict]:
    from blob_lora.metrics import classification_metrics
    from blob_lora.posterior_stats import sigma_stats
    from blob_lora.predictive import predict_noise
    from blob_lora.run.config import RunConfig
    from blob_lora.run.evaluate import Evaluator, eval_set
    from blob_lora.run.files import dataset_label
    from blob_lora.run.runner import Runner

    cfg = RunConfig.from_dict(json.loads((run_dir / "run_config.json").read_text()))
    cfg.output_dir = str(run_dir)
    runner = Runner(cfg)
    runner.load_finished()
    model = runner.setup.model
    examples = eval_set(runner.ctx, cfg.dataset)
    sigma = sigma_stats(model)
    trained_mode, predict_mode = (
        model.adapter_config.sample_mode,
        predict_noise(model.adapter_config),
    )
    rows = []
    for mode, n in [("mean", 0), *((m, N) for m in MODES)]:
        if n:
            model.adapter_config.predict_sample_mode = mode
        probs, labels, mi = Evaluator(runner.ctx).predict(examples, n, desc=f"{mode}")
        metrics = classification_metrics(probs.numpy(), labels.numpy())
        rows.append(
            {
                "run": str(run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir),
                "dataset": dataset_label(cfg.dataset) + (" (dev carve)" if _is_dev(cfg) else ""),
                "seed": cfg.seed,
                "trained_with": trained_mode,
                "mode": mode,
                "n_samples": n,
                "n_examples": len(labels),
                **{k: float(v) for k, v in metrics.items() if k in ("acc", "ece", "nll")},
                "mean_mi": float(mi.mean()),
                "sigma_ratio_median": sigma.get("sigma_ratio_median"),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    model.adapter_config.predict_sample_mode = predict_mode
    return rows


def _is_dev(cfg) -> bool:
    """Evaluated on a dev split carved from train (a dataset spec with `dev`)."""
    name = cfg.dataset
    return name.lstrip().startswith("{") and "dev" in json.loads(name)


def report() -> None:
    rows = json.loads(RESULTS.read_text())
    md = [
        "# Test-time noise on the same trained BLoB weights (flipout against one sample per input)",
        "",
        (__doc__ or "").split("\n\n", 2)[2].strip(),
        "",
        "Command: `.venv/bin/python -m experiments.noise_at_test RUN_DIR ...` then `--report`. "
        f"{measured_on()}",
        "",
        "| run | evaluated on | seed | noise at test | N | ACC % | ECE % | NLL | mean MI (nats) "
        "| σ/abs(μ) |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        md.append(
            f"| {r['run']} | {r['dataset']} | {r['seed']} | {r['mode']} | {r['n_samples']} | {r['acc']:.2f} | "
            f"{r['ece']:.2f} | {r['nll']:.4f} | {r['mean_mi']:.5f} | "
            f"{r['sigma_ratio_median']:.3g} |"
        )
    RESULTS.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if args.runs:
        old = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []
        for run in args.runs:
            new = measure(run.resolve())
            done = {r["run"] for r in new}
            old = [r for r in old if r["run"] not in done] + new
            RESULTS.write_text(json.dumps(old, indent=1) + "\n")
    if args.report:
        report()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
