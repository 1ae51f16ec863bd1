#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/targets) with clang-16 + ASan + UBSan into build-fuzz and
# runs them: every target, or one, for SECONDS each (default 60).
#   scripts/fuzz.sh [TARGET|all] [SECONDS]
# The working corpus is build-fuzz/corpus/TARGET (seeded from fuzz/make_seeds.py each run, kept
# between runs); crashes go to build-fuzz/artifacts/TARGET/. Exits non-zero if any target
# found a crash, a leak, a timeout or an out-of-memory.
# FERRUM_FUZZ_ARGS: extra libFuzzer flags (e.g. -runs=10000000). FERRUM_BUILD_LOCK: a file to
# flock around the build (machines shared by several builders).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-all}"
seconds="${2:-60}"

# clang-16, libFuzzer and the sanitizer runtimes: installed by install-deps.sh when missing.
if ! command -v clang++-16 >/dev/null || [ ! -f /usr/lib/llvm-16/lib/clang/16/lib/linux/libclang_rt.fuzzer-x86_64.a ] ||
   [ ! -x /usr/lib/llvm-16/bin/llvm-symbolizer ]; then
  FERRUM_FUZZ=1 bash scripts/install-deps.sh
fi
export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-16/bin/llvm-symbolizer  # stack traces with file:line
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
if [ ! -f build-fuzz/CMakeCache.txt ]; then
  CC=clang-16 CXX=clang++-16 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFERRUM_CUDA=OFF -DFERRUM_TESTS=OFF -DFERRUM_BENCH=OFF -DFERRUM_FUZZ=ON
fi
build=(cmake --build build-fuzz -j"$(nproc)" --target "$([ "$target" = all ] && echo fuzz_all || echo "$target")" gguf_seeds)
if [ -n "${FERRUM_BUILD_LOCK:-}" ]; then flock "$FERRUM_BUILD_LOCK" "${build[@]}"; else "${build[@]}"; fi

if [ "$target" = all ]; then
  targets=$(cd fuzz/targets && ls fuzz_*.cpp | sed 's/\.cpp$//')
else
  targets="$target"
fi
python3 fuzz/make_seeds.py build-fuzz/seeds
build-fuzz/fuzz/gguf_seeds . build-fuzz/seeds/fuzz_gguf  # real files, from GgufWriter

source scripts/fuzz-dicts.sh

failed=()
for t in $targets; do
  corpus="build-fuzz/corpus/$t" artifacts="build-fuzz/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  [ -d "build-fuzz/seeds/$t" ] && cp -n build-fuzz/seeds/"$t"/* "$corpus"/ 2>/dev/null || true
  dict="$(fuzz_dict_of "$t")"
  dict="${dict:+fuzz/dict/$dict}"
  echo "== fuzz $t (${seconds}s)"
  # -timeout: one input taking over 10 s is a finding; -rss_limit_mb: so is growing past 2 GiB.
  # shellcheck disable=SC2086
  if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "build-fuzz/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=16384 -print_final_stats=1 -artifact_prefix="$artifacts" ${dict:+-dict="$dict"} \
      ${FERRUM_FUZZ_ARGS:-} "$corpus" > "build-fuzz/$t.log" 2>&1; then
    failed+=("$t")
    tail -n 60 "build-fuzz/$t.log"
  fi
  grep -E "^#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::peak_rss_mb" "build-fuzz/$t.log" | tail -n 3
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in build-fuzz/artifacts/)"
  exit 1
fi
echo "fuzz: ok"
