"""bf16 autocast vs fp32 on the real Gemma-3 270M (BLoB on q_proj, v_proj, lm_head).

Training step (forward, answer-token NLL, backward) and BLoB N=10 evaluation of the same
batch, interleaved so machine load hits both alike; plus how far bf16 moves the
predictive probabilities. `precision: bf16` is what the Gemma tier of the paper table uses.

    .venv/bin/python -m bench.precision   # writes bench/results/precision.{json,md}
"""

from __future__ import annotations

import json
import statistics
import subprocess
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.scoring import machine, timed
from blob_lora import get_blob_model
from blob_lora.data import load_examples
from blob_lora.methods import get_method
from blob_lora.models import load_model
from blob_lora.tasks import build_task

OUT = Path(__file__).parent / "results"


DEVICE = {"type": "cpu"}


def autocast(enabled: bool) -> torch.autocast:
    return torch.autocast(DEVICE["type"], dtype=torch.bfloat16, enabled=enabled)


def main(
    rounds: int = 5,
    batch_size: int = 8,
    threads: int = 1,
    device: str = "cpu",
    out: Path = OUT,
    max_length: int = 256,
) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    DEVICE["type"] = torch.device(device).type
    model, tok = load_model("gemma-270m", kind="causal-lm")
    model.to(device)
    blob = get_blob_model(
        model, kind="blob", r=8, alpha=16, target_modules=["q_proj", "v_proj", "lm_head"]
    )
    with torch.no_grad():
        for layer in blob.adapters().values():
            layer.lora_B.normal_(0, 0.01)
    task = build_task("choice", tokenizer=tok, max_length=max_length)
    batch = task.collate(load_examples("rte-qa", "train", limit=batch_size, seed=0))
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
    method = get_method("blob")
    hf = blob.model

    def train_step(bf16: bool) -> None:
        blob.train()
        with autocast(bf16):
            logits = task.class_logits(hf, batch)
        F.cross_entropy(logits.float(), batch["labels"]).backward()
        blob.zero_grad(set_to_none=True)

    def evaluate(bf16: bool, n: int = 10) -> torch.Tensor:
        blob.eval()
        with torch.no_grad(), autocast(bf16):
            probs, _ = method.predict(blob, lambda: task.class_logits(hf, batch).float(), n)
        return probs.float()

    torch.manual_seed(1)
    p32 = evaluate(False, 0)
    torch.manual_seed(1)
    p16 = evaluate(True, 0)
    prob_diff = float((p32 - p16).abs().max())
    times: dict[str, list[float]] = {k: [] for k in ("train32", "train16", "eval32", "eval16")}
    for _ in range(rounds):
        times["train32"].append(timed(lambda: train_step(False), 1))
        times["train16"].append(timed(lambda: train_step(True), 1))
        times["eval32"].append(timed(lambda: evaluate(False), 1))
        times["eval16"].append(timed(lambda: evaluate(True), 1))
    med = {k: statistics.median(v) for k, v in times.items()}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    shape = f"{batch_size} RTE-qa prompts, {batch['input_ids'].shape[1]} tokens"
    rows = [
        {
            "benchmark": "train_step_bf16_vs_fp32",
            "baseline_s": med["train32"],
            "ours_s": med["train16"],
            "speedup": med["train32"] / med["train16"],
        },
        {
            "benchmark": "blob_n10_eval_bf16_vs_fp32",
            "baseline_s": med["eval32"],
            "ours_s": med["eval16"],
            "speedup": med["eval32"] / med["eval16"],
        },
    ]
    where = machine() + (f", {torch.cuda.get_device_name(device)}" if "cuda" in device else "")
    for row in rows:
        row.update(
            model="gemma-270m (BLoB on q,v,lm_head)",
            batch=shape,
            max_abs_prob_diff_n0=prob_diff,
            machine=where,
            date=str(date.today()),
            commit=commit,
            rounds=rounds,
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "precision.json").write_text(json.dumps(rows, indent=2) + "\n")
    md = ["| benchmark | fp32 (s) | bf16 (s) | speed-up |", "|---|---|---|---|"]
    for row, label in zip(rows, ("training step", "BLoB N=10 evaluation"), strict=True):
        md.append(
            f"| {label} | {row['baseline_s']:.2f} | {row['ours_s']:.2f} | {row['speedup']:.2f}x |"
        )
    md.append("")
    md.append(
        f"Gemma-3 270M, {shape}; median of {rounds} interleaved rounds; max |p_bf16 - p_fp32| "
        f"of the N=0 predictive {prob_diff:.1e}."
    )
    md.append(f"Machine: {where}; {date.today()}; commit {commit}.")
    (out / "precision.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args()
    main(a.rounds, a.batch_size, a.threads, a.device, a.out, a.max_length)
