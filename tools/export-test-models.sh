#!/usr/bin/env bash
# Exports the reference models (fixed-seed weights, fresh random inputs) and PyTorch's
# outputs for the whole-model tests into DIR (default build/models).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/models}
mkdir -p "$out"
# Debian's python3 carries torch and onnx; a pyenv or venv python on PATH may not.
/usr/bin/python3 tools/export_models.py --out "$out" --batch 2
