#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, runs the whole test suite with
# CTest, then the sanitizer build of the unit tests and the 60 s fuzz runs.
# TROUPE_QUICK=1 skips the sanitizer build and the fuzzers (for local iteration).
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
tools/export-test-models.sh build/models

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2
ctest --test-dir build -j2 --output-on-failure --timeout 600

if [ "${TROUPE_QUICK:-0}" != 1 ]; then
  # ASan + UBSan over the unit tests (not the conformance or whole-model runs: too slow).
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROUPE_SANITIZE=ON
  cmake --build build-asan -j2 --target test_kernels test_runtime
  ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ctest --test-dir build-asan -j2 --output-on-failure -L unit
  tools/fuzz.sh 60
fi
