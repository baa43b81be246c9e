#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# lint and format first: a one-second check that fails before a 10-minute suite
.venv/bin/ruff check src tests bench experiments
.venv/bin/ruff format --check src tests bench experiments
# the causal-LM tests need Gemma-270m as an HF folder: converted once from the packaged GGUF
# (about 3 min, 1 GB under ~/.cache/blob_lora), reused afterwards
.venv/bin/python -m blob_lora.models gemma-270m >/dev/null
exec .venv/bin/python -m pytest "$@"
