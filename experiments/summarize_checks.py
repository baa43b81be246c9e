"""Tabulate the dev-split checks (head_check.sh, gemma_learnability.sh) into bench/results."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments" / "results"


def table(folder: str, title: str, note: str) -> tuple[list[dict], str]:
    rows = []
    for run in sorted((ROOT / "runs" / folder).glob("*/results-final.json")):
        cfg = json.loads((run.parent / "run_config.json").read_text())
        for r in json.loads(run.read_text()):
            rows.append(
                {
                    "check": run.parent.name,
                    "model": cfg["model"],
                    "lr": cfg["lr"],
                    "head": cfg["head"],
                    "targets": cfg["adapter"]["target_modules"],
                    "steps": cfg["max_steps"],
                    "batch": cfg["batch_size"],
                    "dev_examples": r["n_examples"],
                    "acc": round(r["acc"], 2),
                    "ece": round(r["ece"], 2),
                    "nll": round(r["nll"], 4),
                }
            )
    md = [
        f"## {title}",
        "",
        note,
        "",
        "| check | lr | targets | head | dev n | ACC % | ECE % | NLL |",
    ]
    md.append("|---|---|---|---|---:|---:|---:|---:|")
    md += [
        f"| {r['check']} | {r['lr']:g} | {', '.join(r['targets'])} | {r['head']} | "
        f"{r['dev_examples']} | {r['acc']:.2f} | {r['ece']:.2f} | {r['nll']:.3f} |"
        for r in rows
    ]
    return rows, "\n".join(md)


if __name__ == "__main__":
    a, md_a = table(
        "head-check",
        "MiniLM: head and lr (MLE, 200 steps of batch 32, dev = 20% of the training split)",
        "MRPC's majority class is 67.6% of its training data.",
    )
    b, md_b = table(
        "gemma-check",
        "Gemma-3 270M: does it learn? (MLE, 150 steps of batch 8, dev = 10% of the training "
        "split, at most 200 examples)",
        "Chance: OBQA 25%, WG-S 50%; majority class of the dev subsets used: RTE-qa 53.0%, MRPC-qa 66.5%.",
    )
    (OUT / "dev_checks.json").write_text(json.dumps(a + b, indent=1) + "\n")
    (OUT / "dev_checks.md").write_text("# Dev-split checks\n\n" + md_a + "\n\n" + md_b + "\n")
    print(md_a + "\n\n" + md_b)
