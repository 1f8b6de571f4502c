#!/usr/bin/env bash
# The batching yardstick: measures the seed CNN's capacity over HTTP with the shipped models/
# config, then runs scenarios/batching-sweep.yaml (Poisson, 10 % .. 120 % of that capacity,
# 25 ms SLO) against three static batching configurations, each served by `troupe serve` from
# a temporary copy of models/ whose config.yaml is replaced. Prints a markdown table (goodput
# under the SLO and p99 per load level and configuration) and writes an SVG line chart.
#
# Usage: tools/batching-sweep.sh [BUILD_DIR] [SVG]   (defaults: build, docs/batching-sweep.svg;
#        ~4 minutes; run it on a quiet machine)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$repo_root/build}"
svg="${2:-$repo_root/docs/batching-sweep.svg}"
troupe="$build/apps/troupe"
[ -x "$troupe" ] || { echo "batching-sweep: missing $troupe" >&2; exit 1; }
# shellcheck source=tools/serve-lib.sh
source "$repo_root/tools/serve-lib.sh"

work="$(mktemp -d /tmp/troupe-batching-sweep.XXXXXX)"
trap 'serve_stop; rm -rf "$work"' EXIT

serve_start "$troupe" "$repo_root/models" "$work/serve-capacity.log"
capacity="$(measure_capacity "$troupe" "$SERVE_URL" "$work/capacity.json")"
serve_stop
echo "batching-sweep: capacity $capacity req/s (shipped config)" >&2

# The three configurations differ only in batching; the queue policy is the same for all:
# a request still queued after the SLO (25 ms) is answered 503 rather than served late, so
# an overloaded level sheds load instead of building a backlog that hides the next level.
queue_policy='  default_queue_policy: {default_timeout_microseconds: 25000, timeout_action: REJECT}'
declare -A configs
# none: every request is its own batch (batch size 1 goes at once; no waiting).
configs[none]="max_batch_size: 1
dynamic_batching:
  max_queue_delay_microseconds: 0
$queue_policy"
# small: up to 8 rows, waiting at most 200 µs: little added latency at low load, and the
# per-batch overhead shared by up to 8 requests near saturation.
configs[small]="max_batch_size: 8
dynamic_batching:
  max_queue_delay_microseconds: 200
$queue_policy"
# large: up to 64 rows, waiting up to 2 ms: the most sharing under load, at the price of up to
# 2 ms of waiting for every request when the load is light.
configs[large]="max_batch_size: 64
dynamic_batching:
  max_queue_delay_microseconds: 2000
$queue_policy"

results=()
for name in none small large; do
  repo="$work/repo-$name"
  mkdir -p "$repo/seed_cnn"
  cp -r "$repo_root/models/seed_cnn/1" "$repo/seed_cnn/"
  printf '%s\n' "${configs[$name]}" > "$repo/seed_cnn/config.yaml"
  serve_start "$troupe" "$repo" "$work/serve-$name.log"
  "$troupe" load "$repo_root/scenarios/batching-sweep.yaml" --url "$SERVE_URL" \
    --capacity "$capacity" --quiet --json "$work/$name.json" > /dev/null
  batch="$(avg_batch "$SERVE_URL" seed_cnn)"
  echo "batching-sweep: $name done (avg batch $batch)" >&2
  results+=("$name=$work/$name.json=$batch")
  serve_stop
done

mkdir -p "$(dirname "$svg")"
/usr/bin/python3 "$repo_root/tools/sweep_report.py" --capacity "$capacity" --svg "$svg" "${results[@]}"
