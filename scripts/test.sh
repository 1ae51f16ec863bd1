#!/usr/bin/env bash
# The test suite: builds ferrum (with CUDA when nvcc is there, so that it compiles), runs every
# test, then runs the CPU tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
# FERRUM_SKIP_SANITIZE=1 skips the sanitizer pass (quicker local runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
jobs="$(nproc)"
echo "== tests (Release)"
ctest --test-dir build --output-on-failure -j"$jobs"
if [ "${FERRUM_SKIP_SANITIZE:-0}" != "1" ]; then
  echo "== tests (ASan + UBSan, CPU)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRUM_CUDA=OFF \
    -DFERRUM_BENCH=OFF -DFERRUM_SANITIZE=ON
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
fi
