#!/usr/bin/env bash
# The test suite: builds ferrum (with CUDA when nvcc is there, so that it compiles), runs every
# test, a 2-minute soak of `ferrum serve` (scripts/soak.sh), then the CPU tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer, and every fuzz target for 30 s (scripts/fuzz.sh).
# FERRUM_SKIP_SANITIZE=1 skips the sanitizer pass, FERRUM_SKIP_SOAK=1 the soak and
# FERRUM_SKIP_FUZZ=1 the fuzzing (quicker local runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
jobs="$(nproc)"
echo "== tests (Release)"
ctest --test-dir build --output-on-failure -j"$jobs"
if [ "${FERRUM_SKIP_SOAK:-0}" != "1" ]; then
  echo "== soak (2 minutes)"
  bash scripts/soak.sh 2
fi
if [ "${FERRUM_SKIP_SANITIZE:-0}" != "1" ]; then
  echo "== tests (ASan + UBSan, CPU)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRUM_CUDA=OFF \
    -DFERRUM_BENCH=OFF -DFERRUM_SANITIZE=ON
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
fi
if [ "${FERRUM_SKIP_FUZZ:-0}" != "1" ]; then
  echo "== fuzz smoke (30 s per target)"
  bash scripts/fuzz.sh all 30
fi
