"""Multiple-choice scoring cost on the real Gemma-3 270M.

1. restricted head (last position, answer-token rows only) vs full-vocabulary logits of
   every position, same batch, interleaved; target >= 2x faster.
2. BLoB evaluation with N=10 samples vs 10 x the N=0 pass; target <= 1.05.

    .venv/bin/python -m bench.scoring   # writes bench/results/scoring.{json,md}
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import time
from datetime import date
from pathlib import Path

import torch

from blob_lora import get_blob_model
from blob_lora.data import load_examples
from blob_lora.machine import cpu_name
from blob_lora.methods import get_method
from blob_lora.models import load_model
from blob_lora.tasks import build_task, last_token_index

OUT = Path(__file__).parent / "results"


def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def machine() -> str:
    cpu = cpu_name() or "unknown CPU"
    return f"{cpu}, {_threads(torch.get_num_threads())}, torch {torch.__version__}, {platform.system()}"


def full_logits_scores(model, batch):
    """What a naive scorer does: every position, every vocabulary row, then gather."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    last = last_token_index(batch["attention_mask"])
    return logits[torch.arange(len(last)), last][:, batch["answer_ids"]]


def timed(fn, repeats: int) -> float:
    _sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync()
    return (time.perf_counter() - start) / repeats


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main(
    rounds: int = 5,
    batch_size: int = 8,
    device: str = "cpu",
    threads: int = 2,
    out: Path = OUT,
    max_length: int = 256,
) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model, tok = load_model("gemma-270m", kind="causal-lm")
    model.to(device)
    blob = get_blob_model(
        model, kind="blob", r=8, alpha=16, target_modules=["q_proj", "v_proj", "lm_head"]
    )
    with torch.no_grad():
        for layer in blob.adapters().values():
            layer.lora_B.normal_(0, 0.01)
    blob.eval()
    task = build_task("choice", tokenizer=tok, max_length=max_length)
    examples = load_examples("obqa", "validation", limit=batch_size, seed=0)
    batch = {
        k: v.to(device) if torch.is_tensor(v) else v for k, v in task.collate(examples).items()
    }
    method = get_method("blob")
    hf = blob.model

    with torch.no_grad():
        restricted = task.class_logits(hf, batch)
        full = full_logits_scores(hf, batch)
    max_diff = float((restricted - full).abs().max())

    r_times, f_times, n10_times, n0_times = [], [], [], []
    with torch.no_grad():
        for _ in range(rounds):  # interleaved so load on the machine hits both alike
            r_times.append(timed(lambda: task.class_logits(hf, batch), 1))
            f_times.append(timed(lambda: full_logits_scores(hf, batch), 1))
            n0_times.append(
                timed(lambda: method.predict(blob, lambda: task.class_logits(hf, batch), 0), 3)
            )
            n10_times.append(
                timed(lambda: method.predict(blob, lambda: task.class_logits(hf, batch), 10), 1)
            )
    r, f = statistics.median(r_times), statistics.median(f_times)
    n0, n10 = statistics.median(n0_times), statistics.median(n10_times)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    rows = [
        {
            "benchmark": "restricted_head_vs_full_logits",
            "model": "gemma-270m",
            "batch": f"{batch_size} OBQA prompts, max {batch['input_ids'].shape[1]} tokens",
            "baseline_s": f,
            "ours_s": r,
            "speedup": f / r,
            "target": ">= 2x",
            "max_abs_score_diff": max_diff,
        },
        {
            "benchmark": "n10_eval_vs_10x_n0",
            "model": "gemma-270m (BLoB on q,v,lm_head)",
            "batch": f"{batch_size} OBQA prompts",
            "baseline_s": 10 * n0,
            "ours_s": n10,
            "ratio": n10 / (10 * n0),
            "target": "<= 1.05",
        },
    ]
    where = machine() + (f", {torch.cuda.get_device_name(device)}" if "cuda" in device else "")
    for row in rows:
        row.update(machine=where, date=str(date.today()), commit=commit, rounds=rounds)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scoring.json").write_text(json.dumps(rows, indent=2) + "\n")
    md = ["| benchmark | baseline (s) | ours (s) | figure | target |", "|---|---|---|---|---|"]
    md.append(
        f"| restricted head vs full logits | {f:.3f} | {r:.3f} | {f / r:.1f}x faster | >= 2x |"
    )
    md.append(
        f"| BLoB N=10 vs 10 x N=0 | {10 * n0:.3f} | {n10:.3f} | {n10 / (10 * n0):.3f} | <= 1.05 |"
    )
    md.append("")
    md.append(
        f"Gemma-3 270M, batch {rows[0]['batch']}; median of {rounds} interleaved rounds; "
        f"max |restricted - full| score difference {max_diff:.2e}."
    )
    md.append(f"Machine: {where}; {date.today()}; commit {commit}.")
    (out / "scoring.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args()
    main(a.rounds, a.batch_size, a.device, a.threads, a.out, a.max_length)
