#!/usr/bin/env bash
# time-main-job: the README's main job (tools/demo.sh) on a fresh clone of this repository's
# HEAD, without ccache, timed: prints a markdown table of the build of the troupe target (from
# ninja's log), the rest (serving and the quickstart scenario) and the whole, against the
# 3-minute target. Run it on a quiet machine.
#   tools/time-main-job.sh [port]   (default 8765)
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-8765}
clone=$(mktemp -d)
trap 'rm -rf "$clone"' EXIT
git clone -q . "$clone/troupe"
start=$(date +%s.%N)
(cd "$clone/troupe" && CCACHE_DISABLE=1 TROUPE_PORT=$port tools/demo.sh > "$clone/demo.log" 2>&1) ||
  { tail -20 "$clone/demo.log" >&2; exit 1; }
end=$(date +%s.%N)
build=$(awk 'NR > 1 && $2 > last {last = $2} END {printf "%.0f", last / 1000}' \
  "$clone/troupe/build/.ninja_log")
total=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.0f", b - a}')
accuracy=$(awk '/^(warm-up|steady|burst|priorities) / {printf "%s%s", sep, $NF; sep = " / "}' \
  "$clone/demo.log")
echo "| step | seconds |"
echo "|---|---:|"
echo "| build of the troupe target (fresh clone, no ccache, 2 jobs) | $build |"
echo "| the rest: install check, serve, quickstart scenario (36 s), report | $((total - build)) |"
echo "| **main job, total** (target: under 180) | **$total** |"
echo
echo "Quickstart accuracy per phase: $accuracy."
