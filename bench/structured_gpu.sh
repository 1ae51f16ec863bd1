#!/usr/bin/env bash
# Structured output's cost at serving load: one `ferrum serve`, then `ferrum bench serve` at
# concurrency C, unconstrained and with a JSON schema (response_format json_schema, default
# bench/structured/article.json: nested objects, arrays, $ref, free strings), alternated
# ROUNDS times so that drift hits both alike. One JSON line per run; a summary on stderr.
#   bench/structured_gpu.sh FERRUM MODEL_DIR C [ROUNDS] [SCHEMA] [-- serve flags...]
# Environment: PORT (default 8331), IN / OUTLEN (default 256 / 256).
set -euo pipefail
source "$(dirname "$0")/sweep_lib.sh"
FERRUM=$1 MODEL=$2 C=$3; shift 3
ROUNDS=2 SCHEMA=$(dirname "$0")/structured/article.json
if [ $# -gt 0 ] && [ "$1" != "--" ]; then ROUNDS=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" != "--" ]; then SCHEMA=$1; shift; fi
[ "${1:-}" = "--" ] && shift
PORT=${PORT:-8331} IN=${IN:-256} OUTLEN=${OUTLEN:-256}
start_ferrum "$FERRUM" "$MODEL" "$PORT" "$@"
BODY=$(python3 -c "import json,sys; print(json.dumps({'response_format': {'type': 'json_schema',
  'json_schema': {'name': 'bench', 'schema': json.load(open(sys.argv[1]))}}}))" "$SCHEMA")
for r in $(seq "$ROUNDS"); do
  EXTRA_BODY="" measure_sweep "$FERRUM" "$PORT" "$C" "$IN" "$OUTLEN" "free   round $r: "
  EXTRA_BODY="$BODY" measure_sweep "$FERRUM" "$PORT" "$C" "$IN" "$OUTLEN" "schema round $r: "
done
grep -E "profile|error" "$LOG" | tail -6 || true
