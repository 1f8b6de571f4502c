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
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROUPE_SANITIZE=ON -DTROUPE_CUDA=OFF \
    -DTROUPE_TEST_MODELS="$PWD/build/models"
  cmake --build build-asan -j2 --target test_kernels test_runtime
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  for t in test_kernels test_runtime; do
    ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp \
      build-asan/tests/$t
  done
  # ThreadSanitizer over the actor tests.
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROUPE_TSAN=ON -DTROUPE_CUDA=OFF \
    -DTROUPE_TEST_MODELS="$PWD/build/models"
  cmake --build build-tsan -j2 --target test_actors
  # Not the BERT tensor-parallel case: Debian's libgomp is not instrumented, so TSan takes every
  # element an OpenMP team touches for a race and walks its (suppressed) report, which on
  # BERT-sized tensors runs for hours. The Release suite above runs that case.
  TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/tests/actors/tsan.supp" \
    TROUPE_TEST_MODELS=$PWD/build/models build-tsan/tests/test_actors \
    -tce="bert_encoder served with tensor_parallel*"
  # Memcheck over the GPU backend's host-side cases (lowering, channels-last rewriting, arena
  # plans), which the sanitizer builds leave out with the CUDA backend; about 70 s.
  if [ -x build/tests/test_cuda_backend ]; then
    valgrind -q --error-exitcode=9 --leak-check=no \
      --suppressions=tests/cuda_backend/valgrind.supp build/tests/test_cuda_backend -tse=gpu
  fi
  tools/fuzz.sh 60
fi
