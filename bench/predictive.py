"""The price of uncertainty at prediction: each predictive mode of a trained Bayesian run,
its ACC / ECE / NLL / MI on the run's own evaluation set and its wall time per example
against the posterior mean (N=0), all measured in one process.

    .venv/bin/python -m bench.predictive RUN [RUN ...] [--n 10] [--modes mean sequence head]
        # -> bench/results/predictive.{json,md}
    .venv/bin/python -m bench.predictive RUN [RUN ...] --shares 24
        # -> bench/results/predictive_shares.json: each adapter's share of the linearized
        #    variance of the class contrasts (where the samples' disagreement comes from)

Modes: `mean` (N=0, one pass), `sequence` and `flipout` (N whole-network weight samples,
N passes), `head` (one pass: the trunk at its mean, the head adapter's exact Gaussian
logits; blob and tfb runs with an adapter on the output layer), `linear` (one forward and
C-1 backward passes: every adapter's noise pushed to the logits to first order). Every
mode sees the same examples in the same batches; the per-batch noise seed is the
evaluation's own.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

import torch

from bench.scoring import machine

OUT = Path(__file__).resolve().parent / "results"
MODES = ("mean", "sequence", "flipout", "head", "linear")


def measure(run_dir: Path, modes: list[str], n: int, limit: int | None = None) -> list[dict]:
    """One row per mode: metrics and seconds per example, on the run's evaluation set."""
    from blob_lora.metrics import classification_metrics
    from blob_lora.run.config import RunConfig
    from blob_lora.run.evaluate import Evaluator, eval_set
    from blob_lora.run.runner import Runner

    cfg = RunConfig.from_saved(json.loads((run_dir / "run_config.json").read_text()))
    cfg.output_dir = str(run_dir)
    if limit is not None:  # a seeded subset of the run's evaluation set, the same for every mode
        cfg.eval_limit = min(limit, cfg.eval_limit or limit)
    runner = Runner(cfg)
    runner.load_finished()
    examples = eval_set(runner.ctx, cfg.dataset)
    adapter = runner.setup.model.adapter_config
    evaluator = Evaluator(runner.ctx)
    rows = []
    for mode in modes:
        samples = 0 if mode == "mean" else n
        adapter.predict_sample_mode = None if mode == "mean" else mode
        start = time.perf_counter()
        probs, labels, mi = evaluator.predict(examples, samples, desc=mode)
        seconds = time.perf_counter() - start
        metrics = classification_metrics(probs.numpy(), labels.numpy())
        rows.append(
            {
                "run": str(run_dir),
                "method": cfg.method,
                "dataset": cfg.dataset,
                "mode": mode,
                "n_samples": samples,
                "examples": len(examples),
                **{k: float(v) for k, v in metrics.items() if k in ("acc", "ece", "nll")},
                "mean_mi": float(mi.mean()),
                "s_per_example": seconds / len(examples),
            }
        )
    base = next((r["s_per_example"] for r in rows if r["mode"] == "mean"), None)
    for r in rows:
        r["cost_vs_n0"] = r["s_per_example"] / base if base else None
    return rows


def layer_shares(run_dir: Path, rows: int) -> dict[str, float]:
    """Each adapter's share of the linearized variance of the class contrasts, summed over
    `rows` rows of the run's evaluation set: where the samples' disagreement comes from."""
    from blob_lora.predictive.linearized import variance_by_layer
    from blob_lora.run.config import RunConfig
    from blob_lora.run.evaluate import eval_set
    from blob_lora.run.runner import Runner

    cfg = RunConfig.from_saved(json.loads((run_dir / "run_config.json").read_text()))
    cfg.output_dir, cfg.eval_limit = str(run_dir), rows
    runner = Runner(cfg)
    runner.load_finished()
    setup, examples = runner.setup, eval_set(runner.ctx, cfg.dataset)
    totals: dict[str, float] = {}
    for start in range(0, len(examples), cfg.eval_batch_size):
        batch = runner.ctx.to_device(
            setup.task.collate(examples[start : start + cfg.eval_batch_size])
        )
        with runner.ctx.autocast():
            parts = variance_by_layer(
                setup.model, lambda b=batch: setup.task.class_logits(setup.model.model, b)
            )
        for name, part in parts.items():
            totals[name] = totals.get(name, 0.0) + float(part.sum())
    whole = sum(totals.values())
    return {name: value / whole for name, value in totals.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished blob / tfb run folders")
    parser.add_argument("--modes", nargs="+", default=["mean", "sequence", "head"], choices=MODES)
    parser.add_argument("--n", type=int, default=10, help="N of the sampling modes")
    parser.add_argument("--limit", type=int, help="only K examples of each run's evaluation set")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--shares",
        type=int,
        metavar="K",
        help="instead: each adapter's share of the linearized logit variance on K rows",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.shares:
        shares = {str(run): layer_shares(run, args.shares) for run in args.runs}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "predictive_shares.json").write_text(json.dumps(shares, indent=1) + "\n")
        for run, parts in shares.items():
            print(run)
            for name, share in parts.items():
                print(f"  {name:<50} {share:.3f}")
        return 0
    rows = [row for run in args.runs for row in measure(run, args.modes, args.n, args.limit)]
    where = f"{machine()}, {args.threads} thread(s), {date.today()}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predictive.json").write_text(
        json.dumps({"machine": where, "rows": rows}, indent=1)
    )
    lines = [
        "| run | mode | N | ACC % | ECE % | NLL | MI | s / example | cost / N=0 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {Path(r['run']).name} ({r['method']}, {r['dataset']}) | {r['mode']} | "
            f"{r['n_samples']} | {r['acc']:.2f} | {r['ece']:.2f} | {r['nll']:.4f} | "
            f"{r['mean_mi']:.4f} | {r['s_per_example']:.4f} | {r['cost_vs_n0']:.2f}x |"
        )
    (args.out / "predictive.md").write_text(
        "# Predictive modes: calibration against cost\n\n"
        f"Measured on {where}; every mode of a run in one process, on the same examples.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
