#!/usr/bin/env bash
# How the fresh classifier head of an encoder is trained (head=train vs head=lora), MLE and
# BLoB, on a 20% dev split carved from RTE's *training* data (the validation split is never
# used for this choice). Results: runs/head-check/*/results-final.json
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
dev='{"name": "rte", "resplit": {"source": "train", "eval_fraction": 0.2, "seed": 7}}'
for head in "$@"; do
  for method in mle blob; do
    out=runs/head-check/rte-$head-$method
    [ -f "$out/results-final.json" ] && continue
    samples="[0]"; [ "$method" = blob ] && samples="[0,10]"
    rm -rf "$out"
    .venv/bin/blob train --config configs/minilm-glue.yaml --dataset "$dev" --method "$method" \
      --output-dir "$out" --set "eval_samples=$samples" --set head=$head --set save_every=0
  done
done
