# (Not a ctest script: tests/scripts/ runs on every machine, this needs a GPU.)
# A GPU that faults mid-request (issue 16): the requests of the failed step end with an error,
# /health turns 503 and names the failure, later requests get a 503 at once, nothing hangs, and
# SIGTERM still stops the server. Needs a GPU (scripts/test-gpu.sh runs it); the fault is a
# trapping kernel after the 20th decode graph replay (FERRUM_FAULT_GPU_REPLAY).
#   bash tests/gpu/gpu_fault.sh /path/to/ferrum [MODEL_DIR]   (default: models/ferrum-tiny)
# FERRUM_LIBS: a folder of shared libraries for ferrum alone (scripts/pack-for-gpu.sh's lib/).
set -euo pipefail
FERRUM=$(realpath "${1:?usage: bash $0 /path/to/ferrum [MODEL_DIR]}")
MODEL=${2:-models/ferrum-tiny}
PORT=${PORT:-8437}
TMP=$(mktemp -d)
run_ferrum=(env "LD_LIBRARY_PATH=${FERRUM_LIBS:-}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$FERRUM")
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
fail() { tail -30 "$TMP/log"; echo "FAIL: $*"; exit 1; }

FERRUM_FAULT_GPU_REPLAY=20 "${run_ferrum[@]}" serve "$MODEL" --device cuda --port "$PORT" >"$TMP/log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  grep -q "ferrum is ready" "$TMP/log" && break
  kill -0 "$pid" 2>/dev/null || fail "the server died while starting"
  sleep 0.2
done
url=http://127.0.0.1:$PORT
body='{"prompt": "In the beginning", "max_tokens": 64, "temperature": 0, "ignore_eos": true}'

# The first request's steps replay graphs: the 20th faults. It must end, with an error.
code=$(curl -s -m 60 -o "$TMP/first" -w '%{http_code}' "$url/v1/completions" -H 'Content-Type: application/json' -d "$body") ||
  fail "the request during the fault did not end (curl exit $?)"
[ "$code" = 500 ] || fail "the request during the fault answered $code: $(cat "$TMP/first")"
grep -q "CUDA" "$TMP/first" || fail "its error does not name CUDA: $(cat "$TMP/first")"
echo "ok: the request of the failed step ended with 500: $(head -c 200 "$TMP/first")"

code=$(curl -s -m 5 -o "$TMP/health" -w '%{http_code}' "$url/health")
[ "$code" = 503 ] && grep -q "restart the server" "$TMP/health" || fail "/health answered $code: $(cat "$TMP/health")"
echo "ok: /health 503: $(head -c 200 "$TMP/health")"

for stream in false true; do
  code=$(curl -s -m 10 -o "$TMP/later" -w '%{http_code}' "$url/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"prompt\": \"x\", \"max_tokens\": 8, \"stream\": $stream}") || fail "a later request (stream $stream) hung"
  [ "$code" = 503 ] || fail "a later request (stream $stream) answered $code: $(cat "$TMP/later")"
done
echo "ok: later requests get 503 at once"
grep -q "the model's device has failed" "$TMP/log" || fail "no log line for the device failure"

kill -TERM "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the server did not stop on SIGTERM within 10 s"
wait "$pid" && rc=0 || rc=$?
pid=
[ "$rc" -lt 128 ] || fail "the server died by signal $((rc - 128)) on SIGTERM"
echo "ok: SIGTERM stopped the server (exit $rc)"
echo "gpu_fault: passed"
