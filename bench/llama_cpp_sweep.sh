#!/usr/bin/env bash
# llama.cpp's server on the same GGUF file, measured by the same client as ferrum's sweeps
# (`ferrum bench serve`, closed loop, 2C requests per concurrency), for side-by-side tables.
#   bench/llama_cpp_sweep.sh FERRUM LLAMA_SERVER GGUF "1 16 64" [INPUT_LEN] [OUTPUT_LEN]
# The server gets one slot per request of the largest concurrency, each with room for the
# prompt and the output, all layers on the GPU and flash attention on (LLAMA_FA: how to ask for
# it; builds before mid-2025 take a bare `-fa`: LLAMA_FA=-fa).
set -euo pipefail
source "$(dirname "$0")/sweep_lib.sh"
FERRUM=$1 SERVER=$2 GGUF=$3 CONCURRENCY=$4 IN=${5:-256} OUTLEN=${6:-256}
PORT=${PORT:-8322}
max_c=$(tr ' ' '\n' <<<"$CONCURRENCY" | sort -n | tail -1)
slot_ctx=$(( IN + OUTLEN + 64 ))
LOG=$(mktemp)
"$SERVER" -m "$GGUF" --port "$PORT" -ngl 99 ${LLAMA_FA:--fa on} -np "$max_c" -c $(( slot_ctx * max_c )) \
  ${LLAMA_FLAGS:-} >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 1200); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  kill -0 $PID 2>/dev/null || { tail -30 "$LOG"; echo "llama-server died"; exit 1; }
  sleep 0.25
done
measure_sweep "$FERRUM" "$PORT" "$CONCURRENCY" "$IN" "$OUTLEN" "llama.cpp "
