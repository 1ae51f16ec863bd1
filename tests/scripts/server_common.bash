# Shared by the server end-to-end scripts (sourced, not a test itself): starts `ferrum serve`
# on the fixture model at a free port and stops it with SIGTERM, checking it exits 0.
set -euo pipefail
FERRUM=${1:?usage: bash $0 /path/to/ferrum}
FERRUM=$(realpath "$FERRUM")
MODEL=${FERRUM_TEST_MODEL:-tests/fixtures/models/tiny-llama}
SERVER_PID=""
SERVER_LOG=$(mktemp)
trap '[ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null; rm -f "$SERVER_LOG"' EXIT

# Scripts that drive the server without the JS client set SERVER_NEEDS_NODE=0 before sourcing.
if [ "${SERVER_NEEDS_NODE:-1}" = 1 ]; then
  if ! command -v node >/dev/null; then echo "node is required"; exit 1; fi
  if [ ! -d tests/js/node_modules/openai ]; then echo "run: (cd tests/js && npm install)"; exit 1; fi
fi
if [ ! -f "$MODEL/config.json" ]; then echo "missing fixture model $MODEL"; exit 1; fi

# start_server [extra serve flags...]: sets FERRUM_URL.
start_server() {
  : >"$SERVER_LOG"
  FERRUM_LOG=info "$FERRUM" serve "$MODEL" --port 0 --served-model-name tiny-llama "$@" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  export FERRUM_SERVER_PID=$SERVER_PID
  for _ in $(seq 1 600); do
    grep -q "ferrum is ready" "$SERVER_LOG" && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$SERVER_LOG"; echo "FAIL: the server died while starting"; exit 1; fi
    sleep 0.1
  done
  grep -q "ferrum is ready" "$SERVER_LOG" || { cat "$SERVER_LOG"; echo "FAIL: the server did not get ready"; exit 1; }
  local port
  port=$(grep -o 'listening on http://[^ ]*' "$SERVER_LOG" | head -1 | grep -o '[0-9]*$')
  export FERRUM_URL="http://127.0.0.1:$port"
}

# stop_server: SIGTERM must drain and exit 0.
stop_server() {
  kill -TERM "$SERVER_PID"
  local rc=0
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=""
  if [ "$rc" -ne 0 ]; then cat "$SERVER_LOG"; echo "FAIL: the server exited with $rc after SIGTERM"; exit 1; fi
}
