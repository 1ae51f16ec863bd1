#!/usr/bin/env bash
# Installs what ferrum needs to build and test on Debian 12: compilers and libraries from apt,
# reference tools (tokenizers, jinja, the openai client) from npm; clang-16 and libFuzzer only
# with FERRUM_FUZZ=1. Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  nlohmann-json3-dev libpcre2-dev libutf8proc-dev libboost-dev libcli11-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcurl4-openssl-dev libxxhash-dev
  python3-jsonschema  # the structured-output corpus's validator
  python3  # the soak driver (scripts/soak.py) and the fuzz seed generator: standard library only
)
# Fuzzing (scripts/fuzz.sh, or FERRUM_FUZZ=1): Debian's clang-16 with libFuzzer and the
# sanitizer runtimes.
if [ "${FERRUM_FUZZ:-0}" = "1" ]; then
  APT_PACKAGES+=(clang-16 libfuzzer-16-dev libclang-rt-16-dev llvm-16)  # llvm-16: the symbolizer
fi
# node and npm: the machine image ships them; Debian's packages are the fallback.
command -v npm >/dev/null || APT_PACKAGES+=(nodejs npm)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Reference implementations used by the tests (transformers.js tokenizers, @huggingface/jinja).
if [ ! -d tests/js/node_modules ] || [ tests/js/package.json -nt tests/js/node_modules/.package-lock.json ]; then
  echo "install-deps: npm install (tests/js)"
  (cd tests/js && npm install --no-audit --no-fund --loglevel=error)
fi
echo "install-deps: ok"
