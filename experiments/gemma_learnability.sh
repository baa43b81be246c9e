#!/usr/bin/env bash
# Does Gemma-3 270M learn the task at all in a CPU budget, and with which settings?
# MLE, 150 steps of batch 8, on a 10% dev split carved from each task's training data
# (never its validation split). Settings:
#   qv-3e-4     LoRA on q_proj, v_proj, lr 3e-4 (what a new user tries first)
#   qvh-1e-3    + the answer-token rows of lm_head, lr 1e-3
#   all-1e-3    every linear layer + lm_head, lr 1e-3
# Results: runs/gemma-check/<task>-<setting>/results-final.json
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
declare -A TARGETS=(
  [qv-3e-4]="[q_proj, v_proj]"
  [qvh-1e-3]="[q_proj, v_proj, lm_head]"
  [all-1e-3]="[q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head]"
)
declare -A LR=([qv-3e-4]=3e-4 [qvh-1e-3]=1e-3 [all-1e-3]=1e-3)
for job in "$@"; do            # e.g. obqa:qvh-1e-3
  task=${job%%:*}; setting=${job##*:}
  out=runs/gemma-check/$task-$setting
  [ -f "$out/results-final.json" ] && continue
  rm -rf "$out"
  dev="{\"name\": \"$task\", \"resplit\": {\"source\": \"train\", \"eval_fraction\": 0.1, \"seed\": 7}}"
  .venv/bin/blob train --config configs/gemma-check.yaml --dataset "$dev" --output-dir "$out" \
    --set "adapter.target_modules=${TARGETS[$setting]}" --set "lr=${LR[$setting]}"
done
