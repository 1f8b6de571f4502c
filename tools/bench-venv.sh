#!/usr/bin/env bash
# Creates or updates the benchmark virtual environment (idempotent) and prints its python path.
#
# The venv is made with --system-site-packages so the Debian torch / torchvision / onnx / numpy
# (python3-torch, python3-torchvision, python3-onnx, python3-numpy; see tools/install-deps.sh)
# stay visible; only ONNX Runtime and its small pure-Python dependencies come from PyPI.
#
# Usage: tools/bench-venv.sh [VENV_DIR]      (default: <repo>/.venv, or $TROUPE_VENV)
# Then:  "$(tools/bench-venv.sh | tail -n1)" tools/peer_bench.py ...
set -euo pipefail

# Pinned: 1.30.0 is the version behind the anchor figures in REFERENCE.md §5.
ORT_VERSION="${ORT_VERSION:-1.30.0}"
# onnxruntime>=1.30 requires protobuf>=4.25.8; Debian bookworm ships 4.21. Pin the newest 4.x so
# the venv's copy stays in the same major version as the gencode of Debian's onnx 1.12 (protoc 3.21).
PROTOBUF_VERSION="${PROTOBUF_VERSION:-4.25.8}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-${TROUPE_VENV:-$repo_root/.venv}}"
sys_python=/usr/bin/python3   # Debian python with python3-torch; NOT the pyenv python on PATH

log() { echo "bench-venv: $*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating $venv (system site packages)"
  "$sys_python" -m venv --system-site-packages "$venv"
elif ! grep -q '^include-system-site-packages = true' "$venv/pyvenv.cfg" 2>/dev/null; then
  log "error: $venv exists but was not made with --system-site-packages; remove it and rerun" >&2
  exit 1
fi

py="$venv/bin/python"
have_ort="$("$py" -c 'import onnxruntime; print(onnxruntime.__version__)' 2>/dev/null || true)"
have_pb="$("$py" -c 'import google.protobuf as p; print(p.__version__)' 2>/dev/null || true)"
if [ "$have_ort" = "$ORT_VERSION" ] && [ "$have_pb" = "$PROTOBUF_VERSION" ]; then
  log "onnxruntime $ORT_VERSION already installed"
else
  log "installing onnxruntime==$ORT_VERSION protobuf==$PROTOBUF_VERSION (have: ort='${have_ort}' protobuf='${have_pb}')"
  # Default upgrade strategy (only-if-needed) keeps the Debian numpy that torch was built against.
  "$py" -m pip install --disable-pip-version-check -q \
    "onnxruntime==$ORT_VERSION" "protobuf==$PROTOBUF_VERSION"
fi

# Sanity check: every module the tools need imports from the venv, with the Debian torch/numpy.
"$py" - <<'PY' >&2
import numpy, onnx, onnxruntime, torch
try:
    import torchvision
    tv = torchvision.__version__
except ImportError:
    tv = "MISSING (apt-get install python3-torchvision)"
print(f"bench-venv: onnxruntime {onnxruntime.__version__}, torch {torch.__version__}, "
      f"torchvision {tv}, onnx {onnx.__version__}, numpy {numpy.__version__}")
PY
echo "$py"
