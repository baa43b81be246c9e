#!/usr/bin/env bash
# The paper's OOD protocol on Gemma-3 270M: train on OBQA, evaluate unchanged on ARC-C,
# ARC-E, MMLU college chemistry and physics; MLE vs BLoB. Skips finished runs, resumes
# interrupted ones. Extra `key=value` arguments override the config for every run.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
extra=(); for kv in "$@"; do extra+=(--set "$kv"); done
for seed in 0; do
  for method in mle blob; do
    out=runs/gemma-ood/obqa-$method-s$seed
    [ -f "$out/results-final.json" ] && continue
    resume=""; [ -f "$out/run_config.json" ] && resume="--resume"
    samples="[0]"; [ "$method" = blob ] && samples="[0,10]"
    .venv/bin/blob train --config configs/gemma-obqa.yaml --method "$method" --seed "$seed" \
      --output-dir "$out" --set "eval_samples=$samples" "${extra[@]}" $resume
  done
done
