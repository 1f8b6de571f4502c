# serve-lib.sh: shell functions shared by the HTTP benchmark scripts (source it): start
# `troupe serve` on a free port and wait until it is ready, stop it, and measure the seed CNN's
# capacity with scenarios/capacity.yaml.
# shellcheck shell=bash

serve_lib_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# serve_start TROUPE REPO LOG: starts the server; sets SERVE_PID and SERVE_URL.
serve_start() {
  local troupe="$1" repo="$2" log="$3" port=""
  "$troupe" serve --model-repository "$repo" --http-port 0 > "$log" 2>&1 &
  SERVE_PID=$!
  for _ in $(seq 1 300); do
    port="$(sed -n 's/.*listening on http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$log")"
    [ -n "$port" ] && break
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    echo "troupe serve did not start:" >&2
    cat "$log" >&2
    return 1
  fi
  SERVE_URL="http://127.0.0.1:$port"
  curl -sf "$SERVE_URL/v2/health/ready" > /dev/null
}

# serve_stop: SIGTERM and wait (the server drains within its exit timeout).
serve_stop() {
  if [ -n "${SERVE_PID:-}" ]; then
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
    SERVE_PID=""
  fi
}

# measure_capacity TROUPE URL OUT_JSON: closed-loop throughput of the seed CNN in req/s, the
# better of the scenario's capacity phases.
measure_capacity() {
  "$1" load "$serve_lib_root/scenarios/capacity.yaml" --url "$2" --quiet --json "$3" > /dev/null
  /usr/bin/python3 - "$3" <<'PY'
import json, sys
phases = json.load(open(sys.argv[1]))["phases"]
print(round(max(p["throughput"] for p in phases if p["name"].startswith("capacity"))))
PY
}

# batch_counts URL MODEL: "ROWS BATCHES" the model has executed since the server started.
batch_counts() {
  curl -s "$1/metrics" | /usr/bin/python3 -c '
import re, sys
t, m = sys.stdin.read(), sys.argv[1]
count = lambda name: re.search(r"%s\{model=\"%s\",version=\"1\"\} (\S+)" % (name, m), t).group(1)
print(count("nv_inference_count"), count("nv_inference_exec_count"))' "$2"
}

# avg_batch URL MODEL [SINCE]: rows per executed batch since the server started, or since
# SINCE (an earlier batch_counts answer).
avg_batch() {
  /usr/bin/python3 - "$(batch_counts "$1" "$2")" "${3:-0 0}" <<'PY'
import sys
(rows, batches), (rows0, batches0) = (map(float, a.split()) for a in sys.argv[1:])
print(f"{(rows - rows0) / (batches - batches0):.1f}" if batches > batches0 else "-")
PY
}
