"""Tokens the evaluation forward passes process, file order vs length-sorted batches.

`Evaluator.predict` (run/evaluate.py) batches the examples of an evaluation set by text length, so a batch pads
to a similar length. This counts the padded tokens both ways with the real Gemma-3
tokenizer and prompts (batch 16): a deterministic measure of the work saved, which every
one of the N passes of a sampling method saves again.

    .venv/bin/python -m bench.eval_padding   # writes results/eval_padding.{json,md}
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from blob_lora.data import load_examples, text_size
from blob_lora.models import resolve_model
from blob_lora.tasks import build_task

OUT = Path(__file__).parent / "results"
SETS = [
    ("obqa", "obqa"),
    ("wg-s", "wg-s"),
    ("arc-e", "arc-e"),
    ("rte-qa", "rte-qa"),
    ("boolq (re-split)", {"name": "boolq", "resplit": {"eval_fraction": 0.3}}),
]


def padded_tokens(task, examples, order, batch: int = 16) -> tuple[int, int]:
    total = real = 0
    for i in range(0, len(order), batch):
        b = task.collate([examples[j] for j in order[i : i + batch]])
        total += b["input_ids"].numel()
        real += int(b["attention_mask"].sum())
    return total, real


def main() -> None:
    from transformers import AutoTokenizer

    source, local_only = resolve_model("gemma-270m")
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    task = build_task("choice", tokenizer=tokenizer, max_length=256)
    rows = []
    for label, name in SETS:
        ex = load_examples(name, "validation")
        file_order, real = padded_tokens(task, ex, list(range(len(ex))))
        by_length, _ = padded_tokens(
            task, ex, sorted(range(len(ex)), key=lambda j: text_size(ex[j]))
        )
        rows.append(
            {
                "dataset": label,
                "examples": len(ex),
                "tokens_file_order": file_order,
                "tokens_length_sorted": by_length,
                "real_tokens": real,
                "ratio": round(by_length / file_order, 3),
                "date": str(date.today()),
            }
        )
    OUT.mkdir(exist_ok=True)
    (OUT / "eval_padding.json").write_text(json.dumps(rows, indent=2) + "\n")
    md = [
        "| dataset (validation) | examples | tokens, file order | tokens, length-sorted | real tokens | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    md += [
        f"| {r['dataset']} | {r['examples']} | {r['tokens_file_order']} | "
        f"{r['tokens_length_sorted']} | {r['real_tokens']} | {r['ratio']:.3f} |"
        for r in rows
    ]
    md.append("")
    md.append("Gemma-3 270M tokenizer, zero-shot prompts, batch 16, max length 256.")
    (OUT / "eval_padding.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
