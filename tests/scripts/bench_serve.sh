# End to end: `ferrum bench serve` against `ferrum serve` on the fixture model: a closed loop,
# an open loop (with and without a cap), text prompts on both endpoints, a wrong model name,
# a dead port and bad flags.
SERVER_NEEDS_NODE=0
source "$(dirname "$0")/server_common.bash"
command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
OUT=$(mktemp)
ERR=$(mktemp)
PROMPTS=$(mktemp)
trap '[ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null; rm -f "$SERVER_LOG" "$OUT" "$ERR" "$PROMPTS"' EXIT

# bench EXPECTED_RC ARGS...: runs `ferrum bench serve ARGS` into $OUT/$ERR, checks the exit
# code exactly (a crash or a sanitizer report must not pass for an expected failure).
bench() {
  local want=$1 rc=0
  shift
  "$FERRUM" bench serve "$@" >"$OUT" 2>"$ERR" || rc=$?
  if [ "$rc" -ne "$want" ]; then
    cat "$OUT" "$ERR"
    echo "FAIL: bench serve $* exited with $rc (want $want)"
    exit 1
  fi
}

# check_json EXPR...: each Python expression must hold for j, the JSON on stdout's last line.
check_json() {
  python3 - "$OUT" "$@" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
try:
    j = json.loads(lines[-1])
except Exception as e:
    sys.exit(f"FAIL: the last line of stdout is not JSON ({e}): {lines[-1:]}")
for expr in sys.argv[2:]:
    if not eval(expr, {"j": j}):
        sys.exit(f"FAIL: {expr} does not hold for {json.dumps(j, indent=1)}")
PY
}

expect_text() {  # expect_text FILE TEXT
  grep -qF -- "$2" "$1" || { cat "$OUT" "$ERR"; echo "FAIL: expected '$2' in the output"; exit 1; }
}

start_server --max-num-seqs 8

# Closed loop: 4 in flight, 12 requests of 16 prompt tokens, exactly 8 output tokens each.
bench 0 --url "$FERRUM_URL" --model tiny-llama -c 4 -n 12 --input-len 16 --output-len 8 --vocab-size 1024 --json
check_json 'j["completed"] == 12' 'j["failed"] == 0' 'j["out_tok_s"] > 0' 'j["req_s"] > 0' \
  'j["total_output_tokens"] == 12 * 8' 'j["total_input_tokens"] == 12 * 16' 'j["max_in_flight"] == 4' \
  'j["concurrency"] == 4' 'j["request_rate"] == "inf"' 'j["input_len"] == 16' 'j["output_len"] == 8' \
  'j["ttft_p50_ms"] > 0' 'j["ttft_p99_ms"] >= j["ttft_p50_ms"]' 'j["tpot_p50_ms"] > 0' 'j["itl_p50_ms"] >= 0' \
  'j["duration_s"] > 0' 'j["errors"] == {}' \
  'all(k in j for k in ["in_tok_s", "total_tok_s", "ttft_mean_ms", "ttft_p90_ms", "tpot_p99_ms", "itl_p99_ms", "e2el_p50_ms"])'
expect_text "$OUT" "Serving Benchmark Result"
expect_text "$OUT" "Output token throughput (tok/s):"
expect_text "$ERR" "progress: 12/12 done, 0 failed"  # stderr is not a terminal: progress lines

# The OpenAI base URL (…/v1) works as well; --quiet leaves stderr empty.
bench 0 --url "$FERRUM_URL/v1/" --model tiny-llama -n 3 --input-len 4 --output-len 3 --vocab-size 1024 --warmup 0 --quiet --json
check_json 'j["completed"] == 3' 'j["total_output_tokens"] == 9' 'j["max_in_flight"] == 1'
[ ! -s "$ERR" ] || { cat "$ERR"; echo "FAIL: --quiet printed to stderr"; exit 1; }

# Open loop: Poisson arrivals at 20 req/s, no cap.
bench 0 --url "$FERRUM_URL" --model tiny-llama -n 10 --input-len 8 --output-len 4 --vocab-size 1024 --request-rate 20 --json
check_json 'j["completed"] == 10' 'j["failed"] == 0' 'j["request_rate"] == 20' 'j["total_output_tokens"] == 40' \
  'j["concurrency"] is None'

# Open loop with a cap: arrivals far faster than service, never more than 2 in flight.
bench 0 --url "$FERRUM_URL" --model tiny-llama -c 2 -n 8 --input-len 8 --output-len 4 --vocab-size 1024 --request-rate 1000 --json
check_json 'j["completed"] == 8' 'j["max_in_flight"] <= 2'

# Text prompts, on /v1/completions and on /v1/chat/completions.
printf 'Hello there\n\nOnce upon a time\n' >"$PROMPTS"
bench 0 --url "$FERRUM_URL" --model tiny-llama -c 2 -n 4 --output-len 5 --prompt-file "$PROMPTS" --json
check_json 'j["completed"] == 4' 'j["total_output_tokens"] == 20' 'j["total_input_tokens"] > 0' 'j["input_len"] is None'
bench 0 --url "$FERRUM_URL" --model tiny-llama -c 2 -n 4 --output-len 5 --prompt-file "$PROMPTS" --endpoint chat --json
check_json 'j["completed"] == 4' 'j["total_output_tokens"] == 20' 'j["endpoint"] == "chat"'

# A model the server does not serve: every request fails with the server's message, the
# summary says so, and the exit code is non-zero because nothing completed.
bench 1 --url "$FERRUM_URL" --model no-such-model -c 2 -n 5 --input-len 4 --output-len 2 --vocab-size 1024 --json
check_json 'j["completed"] == 0' 'j["failed"] == 5' 'j["errors"] == {"HTTP 404: The model \u0027no-such-model\u0027 does not exist": 5}'
expect_text "$OUT" "Failures:"
expect_text "$ERR" "warning: a warm-up request failed: HTTP 404"
expect_text "$ERR" "error: no request completed"

# Token ids beyond the model's vocabulary: the server's 400 is counted, not fatal.
bench 1 --url "$FERRUM_URL" --model tiny-llama -n 2 --input-len 4 --output-len 2 --warmup 0 --json
check_json 'j["failed"] == 2' 'all(k.startswith("HTTP 400") for k in j["errors"])'

URL=$FERRUM_URL
stop_server

# Nothing listens any more: a clear message and a non-zero exit, with or without warm-up.
bench 1 --url "$URL" --model tiny-llama -n 2
expect_text "$ERR" "error: cannot reach the server: cannot connect to 127.0.0.1:"
bench 1 --url "$URL" --model tiny-llama -n 2 --warmup 0 --json
check_json 'j["completed"] == 0' 'j["failed"] == 2'
expect_text "$ERR" "error: no request completed (cannot connect to"

# Bad flags.
bench 1 --url https://127.0.0.1:1 --model m
expect_text "$ERR" "https is not supported"
bench 1 --url "http://127.0.0.1:notaport" --model m
expect_text "$ERR" "bad port"
bench 1 --url "$URL" --model m --endpoint chat
expect_text "$ERR" "--endpoint chat needs --prompt-file"
bench 1 --url "$URL" --model m --request-rate 0
expect_text "$ERR" "--request-rate must be positive"
bench 1 --url "$URL" --model m --prompt-file /nonexistent/prompts.txt
expect_text "$ERR" "cannot open it"
bench 106 --model m  # CLI11's exit codes for a missing and an invalid option
expect_text "$ERR" "--url is required"
bench 105 --url "$URL" --model m -c 0
# `ferrum bench` itself still needs -m.
rc=0
"$FERRUM" bench >"$OUT" 2>"$ERR" || rc=$?
[ "$rc" -eq 106 ] || { cat "$ERR"; echo "FAIL: ferrum bench without -m exited $rc, not 106"; exit 1; }
expect_text "$ERR" "--model is required"
echo "PASS"
