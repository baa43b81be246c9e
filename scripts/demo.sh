#!/usr/bin/env bash
# Set up (if needed) and run the offline demo: MiniLM on TREC, LoRA vs BLoB.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/blob demo "$@"
