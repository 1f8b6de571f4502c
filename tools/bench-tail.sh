#!/usr/bin/env bash
# Tail latency of the seed CNN over HTTP at 70 % of its measured capacity: serves models/,
# measures the capacity with a closed loop (scenarios/capacity.yaml), then offers Poisson
# arrivals at 0.7 x that for 30 s (scenarios/tail.yaml) and prints a markdown table with
# p50/p99/p99.9, goodput and errors.
#
# Usage: tools/bench-tail.sh [BUILD_DIR]   (default: build; ~50 s; run it on a quiet machine)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$repo_root/build}"
troupe="$build/apps/troupe"
[ -x "$troupe" ] || { echo "bench-tail: missing $troupe" >&2; exit 1; }
# shellcheck source=tools/serve-lib.sh
source "$repo_root/tools/serve-lib.sh"

work="$(mktemp -d /tmp/troupe-bench-tail.XXXXXX)"
trap 'serve_stop; rm -rf "$work"' EXIT

serve_start "$troupe" "$repo_root/models" "$work/serve.log"
capacity="$(measure_capacity "$troupe" "$SERVE_URL" "$work/capacity.json")"
echo "bench-tail: capacity $capacity req/s" >&2
before="$(batch_counts "$SERVE_URL" seed_cnn)"
"$troupe" load "$repo_root/scenarios/tail.yaml" --url "$SERVE_URL" --capacity "$capacity" \
  --quiet --json "$work/tail.json" > /dev/null
batch="$(avg_batch "$SERVE_URL" seed_cnn "$before")"  # over the tail run

/usr/bin/python3 - "$work/tail.json" "$capacity" "$batch" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
p = next(p for p in run["phases"] if p["name"] == "poisson-70%")
lat = p["latency_ms"]
errors = ", ".join(f"{k} {v}" for k, v in sorted(p["errors"].items())) or "0"
print("| capacity (closed loop, 128 clients, best of 2 × 5 s) | offered (70 %, Poisson) | p50 | p99 | p99.9 "
      f"| goodput (≤ {p['slo_ms']:g} ms) | errors | avg batch |")
print("|---|---|---|---|---|---|---|---|")
print(f"| {float(sys.argv[2]):.0f} req/s | {p['offered_rate']:.0f} req/s for "
      f"{p['end_s'] - p['start_s']:.0f} s | {lat['p50']:.2f} ms | {lat['p99']:.2f} ms "
      f"| {lat['p999']:.2f} ms | {p['goodput']:.0f} req/s "
      f"({100 * p['within_slo'] / max(p['sent'], 1):.2f} % of sent) | {errors} | {sys.argv[3]} |")
PY
