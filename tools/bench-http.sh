#!/usr/bin/env bash
# Benchmarks `troupe serve` over HTTP with wrk against an nginx returning a fixed JSON reply
# (same wrk settings, interleaved runs), and ResNet-18 binary inference against the raw backend.
#
# Usage: tools/bench-http.sh [BUILD_DIR]   (default: build; models from BUILD_DIR/models, made by
#        /usr/bin/python3 tools/export_models.py --out BUILD_DIR/models --models seed_cnn,resnet18)
# Env:   ROUNDS (interleaved rounds, default 2), SECONDS_TINY (10), SECONDS_RESNET (20)
# Needs: wrk, nginx (Debian nginx-light or nginx; tools/install-deps.sh), curl.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$repo_root/build}"
troupe="$build/apps/troupe"
models="$build/models"
rounds="${ROUNDS:-2}"
secs_tiny="${SECONDS_TINY:-10}"
secs_resnet="${SECONDS_RESNET:-20}"
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
for f in "$troupe" "$models/seed_cnn.onnx" "$models/resnet18.onnx" "$nginx_bin" /usr/bin/wrk; do
  [ -e "$f" ] || { echo "bench-http: missing $f" >&2; exit 1; }
done

work="$(mktemp -d /tmp/troupe-bench-http.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- nginx: one worker, a fixed JSON reply shaped like the seed CNN's answer -----------------
nginx_port="$(free_port)"
reply='{"model_name":"seed_cnn","model_version":"1","outputs":[{"name":"logits","datatype":"FP32","shape":[1,10],"data":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0]}]}'
mkdir -p "$work/nginx/logs"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
error_log $work/nginx/logs/error.log crit;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  client_max_body_size 64m;
  client_body_buffer_size 64k;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { default_type application/json; return 200 '$reply'; }
  }
}
CONF
"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)

# --- troupe serve: seed CNN with dynamic batching, ResNet-18 ---------------------------------
mkdir -p "$work/repo/seed_cnn/1" "$work/repo/resnet18/1" "$work/repo/identity16/1"
# The tiny model of the HTTP comparison: 16 floats in, the same 16 out (Identity), so the
# figure is the frontend's cost, not the model's.
/usr/bin/python3 - "$work/repo/identity16/1/model.onnx" <<'PY'
import sys
from onnx import TensorProto, helper, save
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])
g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity16", [x], [y])
save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
PY
cat > "$work/repo/identity16/config.yaml" <<'CONF'
max_batch_size: 64
dynamic_batching:
  max_queue_delay_microseconds: 100
CONF
cp "$models/seed_cnn.onnx" "$work/repo/seed_cnn/1/model.onnx"
cp "$models/resnet18.onnx" "$work/repo/resnet18/1/model.onnx"
cat > "$work/repo/seed_cnn/config.yaml" <<'CONF'
max_batch_size: 64
dynamic_batching:
  max_queue_delay_microseconds: 200
CONF
cat > "$work/repo/resnet18/config.yaml" <<'CONF'
max_batch_size: 16
dynamic_batching:
  max_queue_delay_microseconds: 2000
CONF
"$troupe" serve --model-repository "$work/repo" --http-port 0 > "$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do
  grep -q "listening on" "$work/serve.log" 2>/dev/null && break
  sleep 0.1
done
troupe_port="$(sed -n 's/.*listening on http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$work/serve.log")"
[ -n "$troupe_port" ] || { echo "bench-http: troupe serve did not start:" >&2; cat "$work/serve.log" >&2; exit 1; }
input_name="$(curl -s "http://127.0.0.1:$troupe_port/v2/models/seed_cnn" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["inputs"][0]["name"])')"
resnet_input="$(curl -s "http://127.0.0.1:$troupe_port/v2/models/resnet18" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["inputs"][0]["name"])')"

# --- wrk scripts ----------------------------------------------------------------------------
/usr/bin/python3 - "$work/tiny.lua" "$input_name" <<'PY'
import random, sys
random.seed(1)
data = ",".join(f"{random.uniform(-1, 1):.6f}" for _ in range(784))
body = '{"inputs":[{"name":"%s","shape":[1,1,28,28],"datatype":"FP32","data":[%s]}]}' % (sys.argv[2], data)
with open(sys.argv[1], "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    f.write("wrk.body = [[%s]]\n" % body)
PY
cat > "$work/identity.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"inputs":[{"name":"x","shape":[1,16],"datatype":"FP32","data":[0.5,-1.25,2,3.5,0.125,-0.75,1,0,4,5.5,-6,7,0.25,8,-9.5,10]}]}'
LUA
cat > "$work/resnet.lua" <<LUA
local json = '{"inputs":[{"name":"$resnet_input","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":602112}}],"outputs":[{"name":"OUT","parameters":{"binary_data":true}}]}'
LUA
resnet_output="$(curl -s "http://127.0.0.1:$troupe_port/v2/models/resnet18" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["outputs"][0]["name"])')"
sed -i "s/\"OUT\"/\"$resnet_output\"/" "$work/resnet.lua"
cat >> "$work/resnet.lua" <<'LUA'
-- 150528 floats of 1.0 (little-endian 0x3f800000)
wrk.method = "POST"
wrk.headers["Inference-Header-Content-Length"] = tostring(#json)
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.body = json .. string.rep("\0\0\128\63", 150528)
LUA

rate() { sed -n 's/^Requests\/sec:[[:space:]]*\([0-9.]*\).*/\1/p'; }
errors() { grep -E "Non-2xx|Socket errors" || true; }

tiny_cmd_nginx="wrk -t1 -c64 -d${secs_tiny}s -s tiny.lua http://127.0.0.1:$nginx_port/v2/models/seed_cnn/infer"
tiny_cmd_troupe="wrk -t1 -c64 -d${secs_tiny}s -s tiny.lua http://127.0.0.1:$troupe_port/v2/models/seed_cnn/infer"
# Warm-up (plan compilation for the batch sizes that appear).
(cd "$work" && wrk -t1 -c64 -d2s -s tiny.lua "http://127.0.0.1:$troupe_port/v2/models/seed_cnn/infer" > /dev/null)
id_cmd_nginx="wrk -t1 -c64 -d${secs_tiny}s -s identity.lua http://127.0.0.1:$nginx_port/v2/models/identity16/infer"
id_cmd_troupe="wrk -t1 -c64 -d${secs_tiny}s -s identity.lua http://127.0.0.1:$troupe_port/v2/models/identity16/infer"
(cd "$work" && wrk -t1 -c64 -d2s -s identity.lua "http://127.0.0.1:$troupe_port/v2/models/identity16/infer" > /dev/null)
best_nginx=0; best_troupe=0; best_id_nginx=0; best_id_troupe=0
max_of() { /usr/bin/python3 -c "print(max($1, ${2:-0}))"; }
for r in $(seq 1 "$rounds"); do
  out_n="$(cd "$work" && $id_cmd_nginx)"; n="$(echo "$out_n" | rate)"
  out_t="$(cd "$work" && $id_cmd_troupe)"; t="$(echo "$out_t" | rate)"
  echo "round $r identity16: nginx $n req/s $(echo "$out_n" | errors) | troupe $t req/s $(echo "$out_t" | errors)" >&2
  best_id_nginx="$(max_of "$best_id_nginx" "$n")"; best_id_troupe="$(max_of "$best_id_troupe" "$t")"
  out_n="$(cd "$work" && $tiny_cmd_nginx)"; n="$(echo "$out_n" | rate)"
  out_t="$(cd "$work" && $tiny_cmd_troupe)"; t="$(echo "$out_t" | rate)"
  echo "round $r seed_cnn: nginx $n req/s $(echo "$out_n" | errors) | troupe $t req/s $(echo "$out_t" | errors)" >&2
  best_nginx="$(max_of "$best_nginx" "$n")"; best_troupe="$(max_of "$best_troupe" "$t")"
done
raw_cnn_cmd="troupe bench seed_cnn.onnx --batch 1,16,64 --seconds 3 --no-ceiling --json"
raw_cnn="$("$troupe" bench "$models/seed_cnn.onnx" --batch 1,16,64 --seconds 3 --no-ceiling --json | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)["results"]
b = max(r, key=lambda x: x["items_per_s"])
print("%.0f (batch %d)" % (b["items_per_s"], b["batch"]))')"
metrics="$(curl -s "http://127.0.0.1:$troupe_port/metrics")"
avg_batch="$(echo "$metrics" | /usr/bin/python3 -c '
import re, sys
t = sys.stdin.read()
c = float(re.search(r"nv_inference_count\{model=\"seed_cnn\",version=\"1\"\} (\S+)", t).group(1))
e = float(re.search(r"nv_inference_exec_count\{model=\"seed_cnn\",version=\"1\"\} (\S+)", t).group(1))
print(f"{c / e:.1f}")')"

resnet_cmd="wrk -t1 -c16 -d${secs_resnet}s -s resnet.lua http://127.0.0.1:$troupe_port/v2/models/resnet18/infer"
(cd "$work" && wrk -t1 -c16 -d3s -s resnet.lua "http://127.0.0.1:$troupe_port/v2/models/resnet18/infer" > /dev/null)
out_r="$(cd "$work" && $resnet_cmd)"
resnet_http="$(echo "$out_r" | rate)"
echo "resnet18 over HTTP: $resnet_http req/s $(echo "$out_r" | errors)" >&2
resnet_avg_batch="$(curl -s "http://127.0.0.1:$troupe_port/metrics" | /usr/bin/python3 -c '
import re, sys
t = sys.stdin.read()
c = float(re.search(r"nv_inference_count\{model=\"resnet18\",version=\"1\"\} (\S+)", t).group(1))
e = float(re.search(r"nv_inference_exec_count\{model=\"resnet18\",version=\"1\"\} (\S+)", t).group(1))
print(f"{c / e:.1f}")')"
# The raw backend, measured while the server idles (it holds its threads but no work).
raw_cmd="troupe bench resnet18.onnx --batch 1,4,8,16 --seconds 5 --no-ceiling --json"
raw_json="$("$troupe" bench "$models/resnet18.onnx" --batch 1,4,8,16 --seconds 5 --no-ceiling --json)"
raw_best="$(echo "$raw_json" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)["results"]
b = max(r, key=lambda x: x["items_per_s"])
print("%.1f %d" % (b["items_per_s"], b["batch"]))')"
raw_rate="${raw_best% *}"; raw_batch="${raw_best#* }"

ratio() { /usr/bin/python3 -c "print(f'{$1 / $2:.2f}')"; }
cat <<TABLE

| benchmark | command | result | ratio | target |
|---|---|---|---|---|
| nginx fixed JSON reply (identity body) | \`$id_cmd_nginx\` | $best_id_nginx req/s (best of $rounds) | — | — |
| troupe identity16, HTTP/JSON, batching | \`$id_cmd_troupe\` | $best_id_troupe req/s (best of $rounds) | $(ratio "$best_id_troupe" "$best_id_nginx") × nginx | ≥ 0.5 × |
| nginx fixed JSON reply (seed CNN body) | \`$tiny_cmd_nginx\` | $best_nginx req/s (best of $rounds) | — | — |
| troupe seed CNN, HTTP/JSON, batching | \`$tiny_cmd_troupe\` | $best_troupe req/s (best of $rounds, avg batch $avg_batch) | $(ratio "$best_troupe" "$best_nginx") × nginx | ≥ 0.5 × |
| raw backend seed CNN, best batch | \`$raw_cnn_cmd\` | $raw_cnn img/s | — | — |
| raw backend ResNet-18, best batch | \`$raw_cmd\` | $raw_rate img/s (batch $raw_batch) | — | — |
| troupe ResNet-18, binary tensors, c=16 | \`$resnet_cmd\` | $resnet_http img/s (avg batch $resnet_avg_batch) | $(ratio "$resnet_http" "$raw_rate") × raw | ≥ 0.9 × |
TABLE
