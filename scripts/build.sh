#!/usr/bin/env bash
# Installs the dependencies (if missing) and builds ferrum into build/ (Release).
# CUDA is built when nvcc is found (-DFERRUM_CUDA=OFF to skip); pass extra CMake flags as args.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
if [ -z "${CUDACXX:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then export CUDACXX=/usr/local/cuda/bin/nvcc; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j"$(nproc)"
echo "built: build/ferrum"
