# Shared by the serving sweeps: measure_sweep CLIENT PORT "C1 C2..." INPUT_LEN OUTPUT_LEN LABEL
# runs `ferrum bench serve` (CLIENT) against the server on PORT at each concurrency (closed loop,
# 2C requests, at least 8), printing one JSON line per run and a summary line on stderr.
# BENCH_FLAGS: more bench serve flags; EXTRA_BODY: a JSON object merged into every request.
measure_sweep() {
  local client=$1 port=$2 concurrency=$3 in=$4 outlen=$5 label=$6 c n line
  for c in $concurrency; do
    n=$(( 2 * c > 8 ? 2 * c : 8 ))
    line=$("$client" bench serve --url "http://127.0.0.1:$port" --model m -c "$c" -n "$n" --input-len "$in" \
           --output-len "$outlen" --warmup 2 --json -q ${BENCH_FLAGS:-} ${EXTRA_BODY:+--extra-body "$EXTRA_BODY"} | tail -1)
    echo "$line"
    python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(f\"${label}c={$c} in={$in} out={$outlen}: {r['out_tok_s']:.1f} out tok/s, TTFT p50 {r['ttft_p50_ms']:.1f} ms p99 {r['ttft_p99_ms']:.1f} ms, TPOT p50 {r['tpot_p50_ms']:.2f} ms, {r['total_output_tokens']/max(1,r['completed']):.0f} tokens/request, failed {r['failed']}\")" "$line" >&2
  done
}

# start_ferrum FERRUM MODEL PORT [serve flags...]: starts `ferrum serve` in the background (log
# in $LOG, pid in $PID, stopped at exit) and waits until it is ready.
start_ferrum() {
  local ferrum=$1 model=$2 port=$3
  shift 3
  LOG=$(mktemp)
  "$ferrum" serve "$model" --port "$port" --served-model-name m "$@" >"$LOG" 2>&1 &
  PID=$!
  trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 1200); do
    grep -q "ferrum is ready" "$LOG" && return 0
    kill -0 $PID 2>/dev/null || { cat "$LOG"; echo "server died"; exit 1; }
    sleep 0.25
  done
  echo "ferrum serve was not ready in 5 minutes"; exit 1
}
