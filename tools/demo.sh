#!/usr/bin/env bash
# The README's main-job command. Until the serving pipeline lands (issues 3-5) it installs,
# builds, exports the bundled reference models and runs and benchmarks them on the CPU core.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target troupe
tools/export-test-models.sh build/models

for m in seed_cnn resnet18; do
  echo "== troupe run build/models/$m.onnx (PyTorch's input)"
  build/apps/troupe run "build/models/$m.onnx" -i "build/models/$m.input.npy" -o "build/demo/$m"
done
echo "== troupe bench (seed CNN)"
build/apps/troupe bench build/models/seed_cnn.onnx --batch 1,64,512 --seconds 1
