#!/usr/bin/env bash
# Soak test: `ferrum serve` on the CPU (ferrum-tiny unless FERRUM_SOAK_MODEL names another)
# under a mixed, partly hostile load for MINUTES (default 30), checked throughout by
# scripts/soak.py; then SIGTERM during load must drain and exit 0.
#   scripts/soak.sh [MINUTES]
# Needs build/ferrum (scripts/build.sh). Results: build/soak/{samples.csv,summary.json,server.log}.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-30}"
bin="${FERRUM_BIN:-build/ferrum}"
out="build/soak"
mkdir -p "$out"
[ -x "$bin" ] || { echo "soak: $bin not found (run scripts/build.sh)"; exit 1; }

# Small queues so that bursts go past --max-waiting (503 + Retry-After), and a 1 MiB body limit.
# A random API key: the log must never show it (nor any request text: see the marker below).
key="soak-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
serve_args=(serve ${FERRUM_SOAK_MODEL:-} --port 0 --max-num-seqs 8 --max-waiting 8 --max-body-size 1MiB --api-key "$key")
start_server() {
  : > "$out/server.log"
  "$bin" "${serve_args[@]}" 2>>"$out/server.log" &
  pid=$!
  for _ in $(seq 600); do
    port=$(sed -n 's|.*ferrum is ready: .* at http://127.0.0.1:\([0-9]*\)/v1.*|\1|p' "$out/server.log" | head -n 1)
    [ -n "$port" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$out/server.log"; echo "soak: the server exited"; exit 1; }
    sleep 0.2
  done
  echo "soak: the server did not become ready"; kill "$pid"; exit 1
}

start_server
echo "soak: ferrum serve (pid $pid) on port $port for $minutes min"
status=0
python3 scripts/soak.py --port "$port" --pid "$pid" --api-key "$key" --seconds "$((minutes * 60))" \
  --health-ms "${FERRUM_SOAK_HEALTH_MS:-100}" --out "$out" || status=1
kill -0 "$pid" 2>/dev/null || { echo "soak: the server died"; status=1; }
# SIGTERM during load: the running streams finish, then the server exits 0.
python3 scripts/soak.py --port "$port" --pid "$pid" --api-key "$key" --drain --workers 4 || status=1
if wait "$pid"; then echo "soak: server exited 0 after SIGTERM"; else echo "soak: server exit status $? after SIGTERM"; status=1; fi
if grep -qF -e "$key" -e "zebracorn" "$out/server.log"; then echo "soak: the API key or request text is in the log"; status=1; fi
if grep -E " error\]|AddressSanitizer|runtime error|ferrum crashed" "$out/server.log" | head -n 20; then
  echo "soak: errors in the server log"; status=1
fi
[ "$status" = 0 ] && echo "soak: ok" || echo "soak: FAILED"
exit "$status"
