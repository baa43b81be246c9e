#!/usr/bin/env bash
# The GPU check: everything blob-lora should show on a CUDA machine, in under 10 minutes.
#
#   bash scripts/gpu_check.sh             # on a CUDA machine: writes bench/results/gpu.json
#   bash scripts/gpu_check.sh --dry-run   # the same steps at tiny sizes on CPU (GPUs hidden),
#                                         # writes bench/results/gpu-dry-run.json
#   bash scripts/gpu_check.sh --out PATH  # write the JSON elsewhere
#
# Steps (each under its own time limit, 600 s in all; a failed step is recorded and the
# others still run):
#   1. tests      the CUDA-marked tests (pytest -m cuda: bf16 autocast, fp32 adapters and KL,
#                 noise on the device, 4-bit/8-bit base on the device, a bf16 run)
#   2. train      50 BLoB steps of Gemma-270M in bf16 through `blob train` (RTE-qa), N=0/N=10
#   3. overhead   bench/overhead.py: step time and peak memory of BLoB / LoRA (bf16 autocast)
#   4. scoring    bench/scoring.py: BLoB N=10 evaluation / 10 x N=0 (and restricted head)
#   5. precision  bench/precision.py: bf16 vs fp32 training step and N=10 evaluation
#   6. ddp        2 processes under `accelerate launch --multi_gpu` if 2 GPUs are present
#                 (dry run: 2 CPU processes over gloo)
#   7. fsdp       the same with `--set sharding=fsdp` (FSDP2: base and adapters sharded)
#
# Needs: PYTHON (default .venv/bin/python) with a CUDA build of torch 2.13 and
# `pip install -e ".[offline,dev,quantized]"`; the datasets in ../shared/data or $BLOB_LORA_DATA
# (steps 2, 4, 5, 6 are skipped without them). A fresh machine first converts Gemma-270M to
# an HF folder under ~/.cache/blob_lora (about 3 min on CPU, once; not in the 600 s).
# Logs stay in the work folder it prints.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (use --dry-run, --out PATH)" >&2; exit 2 ;;
  esac
  shift
done

PY=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
STEPS_TSV="$WORK/steps.tsv"
: > "$STEPS_TSV"

if [ "$DRY" = 1 ]; then
  export CUDA_VISIBLE_DEVICES=""          # CPU device even on a GPU machine
  export BLOB_LORA_TEST_DEVICE=cpu        # the CUDA-marked tests run on CPU
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  OUT=${OUT:-bench/results/gpu-dry-run.json}
  DEVICE=cpu THREADS=1
  TRAIN_STEPS=2 BATCH=2 SEQ=64 EVAL_LIMIT=4 EVAL_N=2 TRAIN_LIMIT=16
  OVERHEAD_STEPS=1 WARMUP=1 ROUNDS=1 LIMIT_SCALE=3
else
  if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check.sh: no CUDA GPU visible to $PY; run with --dry-run to check the steps on CPU" >&2
    rm -rf "$WORK"
    exit 2
  fi
  OUT=${OUT:-bench/results/gpu.json}
  DEVICE=cuda THREADS=4
  TRAIN_STEPS=50 BATCH=8 SEQ=256 EVAL_LIMIT=64 EVAL_N=10 TRAIN_LIMIT=400
  OVERHEAD_STEPS=10 WARMUP=2 ROUNDS=5 LIMIT_SCALE=1
fi
NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
echo "gpu_check: $([ "$DRY" = 1 ] && echo 'DRY RUN on CPU' || echo "$NGPU CUDA GPU(s)"); work folder $WORK"

HAVE_DATA=1
if ! "$PY" -c "from blob_lora.data import load_examples; load_examples('rte-qa', 'train', limit=2); load_examples('obqa', 'validation', limit=2)" >"$WORK/data.log" 2>&1; then
  HAVE_DATA=0
  echo "gpu_check: datasets not found (see $WORK/data.log); set BLOB_LORA_DATA to skip no step" >&2
fi

# step NAME LIMIT_SECONDS NEEDS_DATA CMD...: run, time and record one step
step() {
  local name=$1 limit=$2 needs_data=$3
  shift 3
  if [ "$needs_data" = 1 ] && [ "$HAVE_DATA" = 0 ]; then
    printf '%s\tskipped\t0\tno datasets\n' "$name" >> "$STEPS_TSV"
    echo "gpu_check: $name skipped (no datasets)"
    return
  fi
  echo "gpu_check: $name ..."
  local start end rc
  start=$(date +%s.%N)
  timeout "$((limit * LIMIT_SCALE))" "$@" > "$WORK/$name.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  local secs
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  local status=ok
  [ "$rc" = 0 ] || status="failed (exit $rc$([ "$rc" = 124 ] && echo ', time limit'))"
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$secs" "$WORK/$name.log" >> "$STEPS_TSV"
  echo "gpu_check: $name $status in ${secs}s"
  [ "$rc" = 0 ] || tail -5 "$WORK/$name.log" | sed 's/^/    /'
}

TRAIN_ARGS=(--model gemma-270m --dataset rte-qa --method blob --max-steps "$TRAIN_STEPS"
  --set precision=bf16 --set batch_size="$BATCH" --set max_length="$SEQ"
  --set train_limit="$TRAIN_LIMIT" --set eval_limit="$EVAL_LIMIT" --set eval_batch_size=8
  --set "eval_samples=[0,$EVAL_N]" --set save_every="$TRAIN_STEPS"
  --set "adapter.target_modules=[q_proj,v_proj,lm_head]" --set adapter.alpha=16)

step prepare 300 0 "$PY" -m blob_lora.models gemma-270m
step tests 90 0 "$PY" -m pytest -m cuda tests -p no:cacheprovider -rs
step train 120 1 "$PY" -m blob_lora.cli train "${TRAIN_ARGS[@]}" --output-dir "$WORK/train"
step overhead 150 0 "$PY" -m bench.overhead --models gemma \
  --variants peft-lora,ours-lora,blob-sequence --steps-gemma "$OVERHEAD_STEPS" --warmup "$WARMUP" \
  --device "$DEVICE" --precision bf16 --batch "$BATCH" --seq-len "$SEQ" --threads "$THREADS" \
  --out "$WORK/overhead"
step scoring 60 1 "$PY" -m bench.scoring --device "$DEVICE" --rounds "$ROUNDS" \
  --batch-size "$BATCH" --max-length "$SEQ" --threads "$THREADS" --out "$WORK/scoring"
step precision 60 1 "$PY" -m bench.precision --device "$DEVICE" --rounds "$ROUNDS" \
  --batch-size "$BATCH" --max-length "$SEQ" --threads "$THREADS" --out "$WORK/precision"
if [ "$DRY" = 1 ] || [ "$NGPU" -ge 2 ]; then
  step ddp 60 1 "$PY" -m accelerate.commands.launch --multi_gpu --num_processes 2 \
    --num_machines 1 --main_process_port "$((29500 + RANDOM % 2000))" --mixed_precision no \
    --dynamo_backend no -m blob_lora.cli train \
    "${TRAIN_ARGS[@]}" --output-dir "$WORK/ddp"
  step fsdp 60 1 "$PY" -m accelerate.commands.launch --multi_gpu --num_processes 2 \
    --num_machines 1 --main_process_port "$((29500 + RANDOM % 2000))" --mixed_precision no \
    --dynamo_backend no -m blob_lora.cli train \
    "${TRAIN_ARGS[@]}" --set sharding=fsdp --output-dir "$WORK/fsdp"
else
  for name in ddp fsdp; do
    printf '%s\tskipped\t0\tfewer than 2 GPUs\n' "$name" >> "$STEPS_TSV"
    echo "gpu_check: $name skipped (fewer than 2 GPUs)"
  done
fi

"$PY" - "$WORK" "$OUT" "$DRY" <<'EOF'
import datetime, json, platform, re, subprocess, sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

work, out, dry = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"


def pkg(name):
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def rows(path, keep):
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return [{k: r.get(k) for k in keep if k in r} for r in data]


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


steps = {}
for line in (work / "steps.tsv").read_text().splitlines():
    name, status, secs, where = line.split("\t")
    steps[name] = {"status": status, "seconds": float(secs), "log": where}
log = work / "tests.log"
if log.is_file():
    pattern = r"(\d+) (passed|failed|skipped|errors?|deselected)"
    lines = [ln for ln in log.read_text().splitlines() if re.search(pattern, ln)]
    if lines:
        counts = {k: int(n) for n, k in re.findall(pattern, lines[-1])}
        steps["tests"].update(summary=lines[-1].strip("= "), **counts)
for name in ("train", "ddp", "fsdp"):
    results = work / name / "results-final.json"
    if name in steps and results.is_file():
        keep = ("n_samples", "acc", "ece", "nll", "steps", "sigma_mean", "sigma_ratio_median")
        steps[name]["results"] = rows(results, keep)
        steps[name]["processes"] = 1 if name == "train" else 2
keep = ("mode", "step_time_ratio", "peak_memory_ratio", "step_s", "lora_step_s",
        "peak_delta_mb", "batch", "precision", "memory_method")
for name, file, fields in (
    ("overhead", "overhead.json", keep),
    ("scoring", "scoring.json", ("benchmark", "baseline_s", "ours_s", "speedup", "ratio", "batch")),
    ("precision", "precision.json", ("benchmark", "baseline_s", "ours_s", "speedup", "batch")),
):
    found = rows(work / name / file, fields)
    if name in steps and found is not None:
        steps[name]["results"] = found
cuda = torch.cuda.is_available()
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
report = {
    "dry_run": dry,
    "what": (
        "DRY RUN: the GPU check's steps at tiny sizes on CPU (GPUs hidden); no GPU numbers"
        if dry
        else "GPU check on a CUDA machine"
    ),
    "device": torch.cuda.get_device_name(0) if cuda else f"cpu ({cpu_name()})",
    "gpu_count": torch.cuda.device_count(),
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "bitsandbytes": pkg("bitsandbytes"),
    "transformers": pkg("transformers"),
    "date": datetime.date.today().isoformat(),
    "commit": commit.stdout.strip(),
    "work_folder": str(work),
    "ok": all(s["status"] in ("ok", "skipped") for s in steps.values()),
    "steps": steps,
}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(report, indent=2) + "\n")
print(f"gpu_check: wrote {out}" + (" (DRY RUN)" if dry else ""))
for name, s in steps.items():
    print(f"  {name:<10} {s['status']:<24} {s['seconds']:>7.1f}s")
sys.exit(0 if report["ok"] else 1)
EOF
