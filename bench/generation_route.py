"""What sampled summaries cost, by route (issue 32, item 5): the N=0 output, S weight
samples that each read the prompt with their own weights (`gen_prompt=sampled`: exact, the
default), and S samples that share one reading of the prompt at the posterior mean
(`gen_prompt=shared`: the prompt's KV cache computed once per input and repeated).

    .venv/bin/python -m bench.generation_route [--run RUN] [--inputs 12] [--samples 5]
        # -> bench/results/generation_route.{json,md}

The first dialogues of the run's evaluation split (DialogSum's test split), decoded as `blob generate` decodes them (greedy, the
run's max_new_tokens, `eval_batch_size // S` inputs a call, bf16 autocast). Each route is
timed on the same batches, the routes taken in turn batch by batch so that a slow spell of
the machine falls on all of them; time is seconds per input, as a ratio to N=0.

The two routes draw the same weight samples for a seed, so their outputs pair up: the
report gives the share of identical samples, the mean ROUGE-L F1 of the pairs, and each
route's disagreement (1 - mean pairwise ROUGE-L of an input's S samples), the uncertainty
score `blob generate` reports. Without `--run` the bench trains a stand-in (the generation
study's settings, 10 steps on 64 rows): its cost is a trained run's, but its posterior has
barely moved from the init, so its agreement says nothing about the approximation.

What the fast classification predictives (`predict_sample_mode=linear|head`) cannot do
here: they give a Gaussian over one step's logits, while a sample's summary is a sequence
whose later tokens depend on its earlier ones. Each sample still needs its own decode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from bench.scoring import machine

OUT = Path(__file__).resolve().parent / "results"
ROOT = OUT.parent.parent
STAND_IN = ROOT / "runs" / "generation-route" / "stand-in"
ROUTES = ("n0", "sampled", "shared")


def train_stand_in(out: Path) -> None:
    """A BLoB generation run on the study's settings, trained for 10 steps."""
    if (out / "results-final.json").is_file():
        return
    sets = {
        "task": "generate", "precision": "bf16", "batch_size": 8, "max_length": 384,
        "lr": 1e-3, "train_limit": 64, "eval_limit": 2, "eval_batch_size": 16,
        "max_new_tokens": 64, "gen_samples": 2, "eval_samples": [0], "save_every": 0,
        "adapter.r": 8, "adapter.alpha": 16,
        "adapter.target_modules": ["q_proj", "k_proj", "v_proj", "lm_head"],
    }  # fmt: skip
    cmd = [sys.executable, "-m", "blob_lora.cli", "train", "--model", "gemma-270m",
           "--dataset", "dialogsum", "--method", "blob", "--max-steps", "10",
           "--output-dir", str(out)]  # fmt: skip
    for key, value in sets.items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    subprocess.run(cmd, check=True)


def load(run: Path):
    from blob_lora.generation.cli import load_runner, saved_generation_config

    cfg = saved_generation_config(run)
    cfg.output_dir = str(run)
    return load_runner(cfg)


def measure(run: Path, n_inputs: int, samples: int, seed: int) -> dict:
    from blob_lora.data import load_examples
    from blob_lora.generation.decode import mean_output, sample_outputs
    from blob_lora.generation.metrics import pairwise_disagreement, rouge_scorer
    from blob_lora.generation.predict import plan_batches

    runner = load(run)
    task, model, tok = runner.setup.task, runner.setup.model, runner.setup.tokenizer
    cfg = runner.cfg
    examples = load_examples(cfg.dataset, cfg.eval_split)[:n_inputs]  # its first dialogues
    settings = runner.evaluator().decode_settings()
    batches = plan_batches(examples, samples, settings)
    model.eval()
    seconds = {r: 0.0 for r in ROUTES}
    outs: dict[str, list[list[str]]] = {"sampled": [], "shared": []}

    def run_route(route: str, batch) -> list:
        if route == "n0":
            return mean_output(model, tok, batch, settings.max_new_tokens)
        return sample_outputs(model, tok, batch, samples, seed, settings.max_new_tokens,
                              shared_prompt=route == "shared")  # fmt: skip

    with runner.ctx.autocast():
        warm = task.prompts(examples[:1])
        for route in ROUTES:
            run_route(route, warm)
        for k, idx in enumerate(batches):
            batch = task.prompts([examples[i] for i in idx])
            for route in ROUTES[k % 3 :] + ROUTES[: k % 3]:  # the order turns batch by batch
                start = time.perf_counter()
                got = run_route(route, batch)
                seconds[route] += time.perf_counter() - start
                if route != "n0":
                    outs[route] += got
    scorer = rouge_scorer(["rougeL"])
    pairs = [(a, b) for s, h in zip(outs["sampled"], outs["shared"], strict=True)
             for a, b in zip(s, h, strict=True)]  # fmt: skip
    per_input = {r: seconds[r] / len(examples) for r in ROUTES}
    return {
        "run": str(run.relative_to(ROOT) if run.is_relative_to(ROOT) else run),
        "stand_in": run == STAND_IN,
        "inputs": len(examples),
        "samples": samples,
        "max_new_tokens": settings.max_new_tokens,
        "inputs_per_call": len(batches[0]),
        "seconds_per_input": per_input,
        "ratio_to_n0": {r: per_input[r] / per_input["n0"] for r in ROUTES},
        "shared_over_sampled": per_input["shared"] / per_input["sampled"],
        "identical_samples": sum(a == b for a, b in pairs) / len(pairs),
        "paired_rougeL": statistics.fmean(scorer.score(a, b)["rougeL"].fmeasure for a, b in pairs),
        "disagreement": {
            r: statistics.fmean(pairwise_disagreement(s, scorer) for s in outs[r])
            for r in ("sampled", "shared")
        },
    }


def markdown(res: dict) -> str:
    sec, ratio = res["seconds_per_input"], res["ratio_to_n0"]
    lines = [
        "# Sampled summaries: what each route costs",
        "",
        f"Command: `.venv/bin/python -m bench.generation_route {res['command']}`  ",
        f"Machine: {res['machine']}; {res['date']}.  ",
        f"Run: `{res['run']}`"
        + (
            " (a stand-in: 10 steps; its agreement says nothing, see the module doc)"
            if res["stand_in"]
            else ""
        )
        + "  ",  # fmt: skip
        f"{res['inputs']} DialogSum test dialogues, S={res['samples']} samples, greedy, "
        f"at most {res['max_new_tokens']} new tokens, {res['inputs_per_call']} inputs a call.",
        "",
        "| route | s per input | x N=0 |",
        "|---|---:|---:|",
        f"| N=0 (posterior mean, greedy) | {sec['n0']:.2f} | 1.00 |",
        f"| S samples, each reads the prompt (`gen_prompt=sampled`, exact) | {sec['sampled']:.2f} "
        f"| {ratio['sampled']:.2f} |",
        f"| S samples, one reading at the mean (`gen_prompt=shared`) | {sec['shared']:.2f} "
        f"| {ratio['shared']:.2f} |",
        "",
        f"shared / sampled: {res['shared_over_sampled']:.2f}x the time. Paired samples (same "
        f"seed, same weight samples): {100 * res['identical_samples']:.0f}% identical, mean "
        f"ROUGE-L F1 {res['paired_rougeL']:.3f}; disagreement {res['disagreement']['sampled']:.3f}"
        f" (sampled) against {res['disagreement']['shared']:.3f} (shared).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.generation_route")
    parser.add_argument("--run", type=Path, help="a finished generation run (default: a stand-in)")
    parser.add_argument("--inputs", type=int, default=12)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    run = args.run
    if run is None:
        train_stand_in(STAND_IN)
        run = STAND_IN
    res = measure(run.resolve(), args.inputs, args.samples, args.seed)
    res["command"] = " ".join(argv if argv is not None else sys.argv[1:])
    res["machine"] = machine()
    res["date"] = str(date.today())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generation_route.json").write_text(json.dumps(res, indent=1) + "\n")
    (args.out / "generation_route.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
