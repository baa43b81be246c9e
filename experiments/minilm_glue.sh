#!/usr/bin/env bash
# MiniLM on RTE and MRPC: MLE vs BLoB (N=0 / N=10), 3 seeds; skips finished runs and
# resumes interrupted ones. Results: runs/minilm-glue/*/results-final.json
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
for seed in 0 1 2; do
  for ds in rte mrpc; do
    for method in mle blob; do
      out=runs/minilm-glue/$ds-$method-s$seed
      [ -f "$out/results-final.json" ] && continue
      resume=""; [ -f "$out/run_config.json" ] && resume="--resume"
      samples="[0]"; [ "$method" = blob ] && samples="[0,10]"
      .venv/bin/blob train --config configs/minilm-glue.yaml --dataset "$ds" --method "$method" \
        --seed "$seed" --output-dir "$out" --set "eval_samples=$samples" $resume
    done
  done
done
