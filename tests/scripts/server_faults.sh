# Start-up faults give a clear error and a non-zero exit, never a crash: a KV cache larger than
# memory (naming --kv-cache-memory), a model folder that is gone, a truncated weights file, a
# folder without weights; and listening on all interfaces without --api-key warns.
set -euo pipefail
FERRUM=$(realpath "${1:?usage: bash $0 /path/to/ferrum}")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# expect_failure NAME PATTERN CMD...: CMD must exit non-zero (not by a signal) and print PATTERN.
expect_failure() {
  local name=$1 pattern=$2 rc=0
  shift 2
  "$@" >"$TMP/out" 2>&1 || rc=$?
  if [ "$rc" = 0 ] || [ "$rc" -gt 128 ]; then cat "$TMP/out"; echo "FAIL $name: exit status $rc"; exit 1; fi
  if ! grep -qE "$pattern" "$TMP/out"; then cat "$TMP/out"; echo "FAIL $name: no '$pattern' in the output"; exit 1; fi
  echo "ok: $name"
}

expect_failure "KV cache larger than memory" "lower --kv-cache-memory" \
  "$FERRUM" serve --port 0 --kv-cache-memory 100000GiB

cp -r models/ferrum-tiny "$TMP/model"
expect_failure "model folder gone" "$TMP/gone" "$FERRUM" generate -m "$TMP/gone" -p "In the" -n 4

size=$(stat -c %s "$TMP/model/model.safetensors")
truncate -s $((size / 2)) "$TMP/model/model.safetensors"
expect_failure "truncated weights" "truncated" "$FERRUM" generate -m "$TMP/model" -p "In the" -n 4

rm "$TMP/model/model.safetensors"
expect_failure "no weights" "model.safetensors" "$FERRUM" generate -m "$TMP/model" -p "In the" -n 4

# All interfaces, no key: a warning (the server is stopped once it is listening).
"$FERRUM" serve --host 0.0.0.0 --port 0 >"$TMP/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$TMP/log" && break; sleep 0.1; done
kill -TERM "$pid"; wait "$pid" || true
grep -q "without --api-key" "$TMP/log" || { cat "$TMP/log"; echo "FAIL: no warning for 0.0.0.0 without --api-key"; exit 1; }
echo "ok: warning for a public address without --api-key"
"$FERRUM" serve --host 127.0.0.1 --port 0 >"$TMP/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$TMP/log" && break; sleep 0.1; done
kill -TERM "$pid"; wait "$pid" || true
if grep -q "without --api-key" "$TMP/log"; then cat "$TMP/log"; echo "FAIL: warning on loopback"; exit 1; fi
echo "ok: no warning on loopback"
