#!/usr/bin/env bash
# The GPU tests, on a machine with an NVIDIA GPU (CI has none, so there they only compile and
# skip): every op against the op harness's float64 references (quantized weight formats
# included), the fixtures against transformers' logits, quantized checkpoints and GGUF files, the
# engine on the GPU, and a short benchmark. Uses the binaries of build/ (./scripts/build.sh,
# with nvcc); BUILD=dir picks another build, FERRUM_LIBS a folder of shared libraries for its
# binaries alone (scripts/pack-for-gpu.sh's lib/ on a machine without our Debian packages; the
# machine's own curl, which tests/gpu/gpu_fault.sh uses, would not run with them).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
for t in "$B/test_backend" "$B/test_models" "$B/test_engine" "$B/ferrum"; do
  [ -x "$t" ] || { echo "missing $t: build first (./scripts/build.sh)"; exit 1; }
done
run() { env "LD_LIBRARY_PATH=${FERRUM_LIBS:-}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
run "$B/test_backend" --gtest_filter='BackendOps*:SamplingParity*' --gtest_brief=1
# transformers' fixtures, GPTQ/AWQ/FP8 checkpoints and GGUF files on the GPU
run "$B/test_models" --gtest_filter='*GoldenCuda*:*Cuda*' --gtest_brief=1
run "$B/test_engine" --gtest_filter='*Cuda*' --gtest_brief=1
# a GPU that faults mid-request fails its requests and /health, and still stops on SIGTERM
bash tests/gpu/gpu_fault.sh "$B/ferrum"
run "$B/ferrum" bench -m bench/configs/qwen3-0.6b --dummy bf16 --device cuda -p 128 -n 32 -c 1,16
echo "GPU tests passed"
