#!/usr/bin/env bash
# Builds the libFuzzer targets with clang + ASan + UBSan and runs each for SECONDS (default 60).
# Usage: tools/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_onnx_import fuzz_kserve_json fuzz_http_request)

cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DTROUPE_FUZZ=ON -DTROUPE_SANITIZE=ON -DTROUPE_CUDA=OFF -DBUILD_TESTING=ON >/dev/null
cmake --build build-fuzz -j2 --target "${targets[@]}"

export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp
for t in "${targets[@]}"; do
  corpus=tests/fuzz/corpus/${t#fuzz_}
  work=$(mktemp -d)
  echo "fuzz: $t for ${seconds}s (seed corpus $corpus)"
  ./build-fuzz/tests/$t -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 \
    -print_final_stats=1 "$work" "$corpus"
  rm -rf "$work"
done
