#!/usr/bin/env bash
# Issue 12's GPU measurements in one call: the quantized linear layers alone at Llama-3.1-8B
# shapes (op_perf --format: time, GB/s, share of the read bandwidth), then serving sweeps
# (`ferrum bench serve`, 256 in / 256 out) of GPTQ int4, FP8 and a GGUF Q4_K_M that
# `ferrum quantize --dummy` writes (about 2 minutes on 16 cores).
#   bench/quantized_sweep.sh BIN_DIR MODELS_DIR [OUT_DIR]
# BIN_DIR holds ferrum and op_perf; MODELS_DIR the bench configs with their tokenizers
# (scripts/pack-for-gpu.sh puts both in .carry/). Set STEPS to a subset of "ops serve gguf".
set -uo pipefail
B=$1 M=$2 OUT=${3:-/tmp/quantized-sweep}
STEPS=${STEPS:-ops serve gguf}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
if [[ " $STEPS " == *" ops "* ]]; then
  for f in dense gptq fp8 q4_k q6_k q8_0; do
    "$B/op_perf" --device cuda --format "$f" --rows 1,16,64,256 --filter linear | tee "$OUT/op_perf-$f.txt"
  done
fi
if [[ " $STEPS " == *" serve "* ]]; then
  bench/serve_sweep.sh "$B/ferrum" "$M/llama-3.1-8b-gptq" "1 64" 256 256 -- --device cuda --dummy bf16 2>&1 | grep "^c="
  bench/serve_sweep.sh "$B/ferrum" "$M/llama-3.1-8b-fp8" "1 256" 256 256 -- --device cuda --dummy bf16 2>&1 | grep "^c="
fi
if [[ " $STEPS " == *" gguf "* ]]; then
  [ -f "$OUT/l8b-q4km.gguf" ] || "$B/ferrum" quantize --dummy "$M/llama-3.1-8b" "$OUT/l8b-q4km.gguf" Q4_K_M
  bench/serve_sweep.sh "$B/ferrum" "$OUT/l8b-q4km.gguf" "1 64" 256 256 -- --device cuda 2>&1 | grep "^c="
fi
