#!/usr/bin/env bash
# How the fresh classifier head of an encoder is trained (head=train vs head=lora) and at
# which lr, MLE, on 20% dev splits carved from the *training* data (the validation split is
# never used for these choices). Jobs: TASK:HEAD:LR, e.g. mrpc:train:5e-4.
# Results: runs/head-check/TASK-HEAD-LR/results-final.json
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
for job in "$@"; do
  IFS=: read -r task head lr <<< "$job"
  dev="{\"name\": \"$task\", \"resplit\": {\"source\": \"train\", \"eval_fraction\": 0.2, \"seed\": 7}}"
  out=runs/head-check/$task-$head-$lr
  [ -f "$out/results-final.json" ] && continue
  rm -rf "$out"
  .venv/bin/blob train --config configs/minilm-glue.yaml --dataset "$dev" --method mle \
    --output-dir "$out" --set "eval_samples=[0]" --set head=$head --set lr=$lr --set save_every=0
done
