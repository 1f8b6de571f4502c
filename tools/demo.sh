#!/usr/bin/env bash
# The README's main job: install what is missing, build, train (or reuse) the bundled seed CNN,
# serve models/ over HTTP, run scenarios/quickstart.yaml against it with the Fashion-MNIST test
# images, print the summary with accuracy, write the HTML report, and stop the server.
# TROUPE_PORT picks the HTTP port (default 8000).
set -euo pipefail
cd "$(dirname "$0")/.."
port=${TROUPE_PORT:-8000}
out=build/quickstart

tools/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target troupe
if [ ! -f models/seed_cnn/1/model.onnx ]; then
  /usr/bin/python3 tools/train_seed_cnn.py --out models/seed_cnn/1/model.onnx
fi
mkdir -p "$out"

build/apps/troupe serve --model-repository models --http-port "$port" > "$out/serve.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break
  kill -0 $server 2>/dev/null || { cat "$out/serve.log"; exit 1; }
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null || { echo "server not ready"; exit 1; }

build/apps/troupe load scenarios/quickstart.yaml --url "http://127.0.0.1:$port" \
  --json "$out/quickstart.json" --csv "$out/quickstart.csv" --html "$out/quickstart.html"

kill -TERM $server
wait $server
trap - EXIT
echo "report: $out/quickstart.html (JSON and per-second CSV beside it)"
