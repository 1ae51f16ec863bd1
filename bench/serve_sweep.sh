#!/usr/bin/env bash
# Serving sweep: starts `ferrum serve` on a model folder, measures it with `ferrum bench serve`
# at each concurrency (closed loop, 2C requests), prints one JSON line per run, stops it.
#   bench/serve_sweep.sh FERRUM MODEL_DIR "1 16 64 256" [INPUT_LEN] [OUTPUT_LEN] [-- serve flags...]
# Environment: PORT (default 8321), BENCH_FLAGS (extra bench serve flags).
set -euo pipefail
source "$(dirname "$0")/sweep_lib.sh"
FERRUM=$1 MODEL=$2 CONCURRENCY=$3 IN=${4:-256} OUTLEN=${5:-256}
shift $(( $# < 5 ? $# : 5 )); [ "${1:-}" = "--" ] && shift
PORT=${PORT:-8321}
start_ferrum "$FERRUM" "$MODEL" "$PORT" "$@"
grep -E "defaults|engine:|KV cache|graph" "$LOG" || true
measure_sweep "$FERRUM" "$PORT" "$CONCURRENCY" "$IN" "$OUTLEN" ""
grep -E "profile" "$LOG" | tail -4 || true
