"""Where does BLoB's extra step time go? Phase timing, a per-op profile, and a layer microbench.

Companion of bench/overhead.py (same models, batches and variants):

1. phase timing: forward+loss, KL, backward, AdamW step, interleaved round-robin, medians;
2. torch.profiler over a few steps per variant: the self-CPU time of every op, with the
   ops whose total grows most against ours-lora;
3. one adapter layer alone (the delta only, forward+backward) at the model's activation
   shape: LoRA vs per-sequence bmm vs flipout, where the frozen base does not hide it.

    .venv/bin/python -m bench.profile_overhead --model minilm
    .venv/bin/python -m bench.profile_overhead --model gemma --steps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from bench import overhead as ov


def phase_step(r: ov.Runner) -> dict[str, float]:
    t = {}
    t0 = time.perf_counter()
    r.opt.zero_grad(set_to_none=True)
    loss = r.model(**r.batch).loss
    t1 = time.perf_counter()
    if r.bayes:
        loss = loss + (ov.KL_WEIGHT * r.model.kl()).to(loss.dtype)
    t2 = time.perf_counter()
    loss.backward()
    t3 = time.perf_counter()
    r.opt.step()
    t4 = time.perf_counter()
    t["forward+loss"], t["kl"], t["backward"], t["adamw"] = t1 - t0, t2 - t1, t3 - t2, t4 - t3
    t["total"] = t4 - t0
    return t


def op_profile(r: ov.Runner, steps: int) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            r.step()
    out: dict[str, float] = defaultdict(float)
    for evt in prof.key_averages():
        out[evt.key] += evt.self_cpu_time_total / 1e6 / steps  # seconds per step
    return dict(out)


def layer_microbench(shape: tuple[int, ...], r: int, out_features: int, reps: int) -> dict:
    """Delta path of one adapter layer only (no frozen base), forward+backward."""
    from blob_lora.config import AdapterConfig
    from blob_lora.layers import LAYER_TYPES

    in_features = shape[-1]
    res = {}
    for name, kind, mode in [
        ("lora", "lora", "sequence"),
        ("blob-sequence", "blob", "sequence"),
        ("blob-flipout", "blob", "flipout"),
    ]:
        base = torch.nn.Linear(in_features, out_features, bias=False).requires_grad_(False)
        cfg = AdapterConfig(kind=kind, r=r, alpha=2 * r, target_modules=["x"], sample_mode=mode)
        layer = LAYER_TYPES[kind](base, cfg).train()
        torch.nn.init.normal_(layer.lora_B, std=0.02)
        x = torch.randn(*shape, requires_grad=True)
        ts = []
        for i in range(reps + 2):
            t = time.perf_counter()
            y = layer.delta(x)
            y.sum().backward()
            if i >= 2:
                ts.append(time.perf_counter() - t)
        res[name] = statistics.median(ts)
    return res


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="minilm", choices=sorted(ov.SETTINGS))
    p.add_argument("--variants", default="ours-lora,blob-sequence,blob-flipout")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--profile-steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    setting = ov.SETTINGS[args.model]
    variants = args.variants.split(",")
    base, _ = ov.load_base(setting)
    batch = ov.make_batch(setting, base, torch.device("cpu"))
    runners = []
    for v in variants:
        model, bayes = ov.build_variant(v, ov.share_frozen_copy(base, setting), setting)
        runners.append(ov.Runner(v, model, bayes, batch))
    for r in runners:  # warm-up
        r.step(), r.step()

    phases: dict[str, list[dict]] = {r.variant: [] for r in runners}
    for rnd in range(args.steps):
        k = rnd % len(runners)
        for r in runners[k:] + runners[:k]:
            phases[r.variant].append(phase_step(r))
    med = {v: {k: statistics.median(s[k] for s in ph) for k in ph[0]} for v, ph in phases.items()}
    print("\n== phase medians (s) ==")
    keys = list(next(iter(med.values())))
    print(f"{'variant':<15}" + "".join(f"{k:>14}" for k in keys))
    for v, m in med.items():
        print(f"{v:<15}" + "".join(f"{m[k]:>14.4f}" for k in keys))

    profiles = {r.variant: op_profile(r, args.profile_steps) for r in runners}
    ref = profiles[variants[0]]
    print(f"\n== ops with the largest extra self-CPU time vs {variants[0]} (s/step) ==")
    diffs = {}
    for v in variants[1:]:
        prof = profiles[v]
        keys_all = set(prof) | set(ref)
        d = sorted(((prof.get(k, 0.0) - ref.get(k, 0.0), k) for k in keys_all), reverse=True)
        diffs[v] = [(k, round(x, 5), round(prof.get(k, 0.0), 5)) for x, k in d[:12]]
        print(f"-- {v}: total self-CPU {sum(prof.values()):.3f}s vs {sum(ref.values()):.3f}s")
        for x, k in d[:12]:
            print(f"   {k:<40} +{x:8.4f}  ({prof.get(k, 0.0):.4f} vs {ref.get(k, 0.0):.4f})")

    # activation shape entering one adapted layer, out = in (q/v of MiniLM; q of Gemma)
    first = (
        next(iter(runners[0].model.adapters().values()))
        if hasattr(runners[0].model, "adapters")
        else None
    )
    in_f = first.in_features if first is not None else 384
    out_f = first.out_features if first is not None else in_f
    micro = layer_microbench((setting.batch, setting.seq_len, in_f), setting.r, out_f, reps=10)
    print(
        f"\n== one adapter delta, x=({setting.batch},{setting.seq_len},{in_f}) -> {out_f}, "
        "forward+backward (s) =="
    )
    for k, v in micro.items():
        print(f"   {k:<15} {v:.5f}  (x{v / micro['lora']:.2f})")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"model": args.model, "phases": med, "op_diffs": diffs, "layer_delta_s": micro},
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
