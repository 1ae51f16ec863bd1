# End to end with GGUF files: `ferrum quantize` writes ferrum-tiny as F16 and Q8_0, and the F16
# file as Q4_K_M, and random blocks of its shape (--dummy --random-blocks); `generate`
# on the F16 file says what the safetensors folder says (greedy); `serve` and `run` take the
# Q8_0 file, chat template from its metadata; bad types, missing folders and a truncated file
# fail with a message, not a crash.
set -euo pipefail
FERRUM=$(realpath "${1:?usage: bash $0 /path/to/ferrum}")
MODEL=models/ferrum-tiny
DIR=$(mktemp -d)
SERVER_PID=""
trap '[ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null; rm -rf "$DIR"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$FERRUM" quantize "$MODEL" "$DIR/tiny-f16.gguf" F16 2>/dev/null || fail "quantize F16"
"$FERRUM" quantize "$MODEL" "$DIR/tiny-q8.gguf" Q8_0 2>/dev/null || fail "quantize Q8_0"
"$FERRUM" quantize "$DIR/tiny-f16.gguf" "$DIR/tiny-q4km.gguf" Q4_K_M 2>/dev/null || fail "quantize GGUF -> Q4_K_M"
[ "$(head -c 4 "$DIR/tiny-q8.gguf")" = "GGUF" ] || fail "no GGUF magic"
# Random blocks of ferrum-tiny's shape: the model runs on them.
"$FERRUM" quantize --dummy --random-blocks "$MODEL" "$DIR/tiny-rb.gguf" Q4_K_M 2>/dev/null || fail "quantize --random-blocks"
[ -n "$("$FERRUM" generate -m "$DIR/tiny-rb.gguf" -p "Once upon a time" -n 4 --temp 0 2>/dev/null)" ] ||
  fail "generate on random blocks"

WANT=$("$FERRUM" generate -m "$MODEL" -p "Once upon a time" -n 16 --temp 0 2>/dev/null)
GOT=$("$FERRUM" generate -m "$DIR/tiny-f16.gguf" -p "Once upon a time" -n 16 --temp 0 2>/dev/null)
[ "$GOT" = "$WANT" ] || fail "generate from the F16 GGUF printed $(printf %q "$GOT"), the folder $(printf %q "$WANT")"
[ -n "$("$FERRUM" generate -m "$DIR/tiny-q8.gguf" -p "Once upon a time" -n 8 --temp 0 2>/dev/null)" ] || fail "generate Q8_0"
[ -n "$("$FERRUM" generate -m "$DIR/tiny-q4km.gguf" -p "Once upon a time" -n 8 --temp 0 2>/dev/null)" ] || fail "generate Q4_K_M"

LOG="$DIR/serve.log"
FERRUM_LOG=info "$FERRUM" serve "$DIR/tiny-q8.gguf" --port 0 --served-model-name tiny >"$LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do grep -q "ferrum is ready" "$LOG" && break; kill -0 $SERVER_PID 2>/dev/null || { cat "$LOG"; fail "serve died"; }; sleep 0.1; done
grep -q "ferrum is ready" "$LOG" || { cat "$LOG"; fail "serve did not get ready"; }
PORT=$(grep -o 'listening on http://[^ ]*' "$LOG" | head -1 | grep -o '[0-9]*$')
BODY='{"model":"tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":8,"temperature":0}'
RESP=$(curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' -d "$BODY" "http://127.0.0.1:$PORT/v1/chat/completions")
[ "$(echo "$RESP" | tail -1)" = 200 ] || fail "chat completion: $RESP"
echo "$RESP" | head -1 | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["choices"][0]["message"]["content"], j; assert j["usage"]["completion_tokens"] == 8, j' ||
  fail "chat completion body: $RESP"
kill -TERM $SERVER_PID; wait $SERVER_PID || fail "serve exited non-zero"; SERVER_PID=""
OUT=$(printf 'Hello\n' | "$FERRUM" run "$DIR/tiny-q8.gguf" --temp 0 -n 6 2>/dev/null)
[ -n "$OUT" ] || fail "run on the GGUF printed nothing"

# Errors, each with a message and a plain non-zero exit (not a signal).
expect_error() {  # expect_error TEXT CMD...
  local text=$1 rc=0; shift
  "$@" >"$DIR/out" 2>&1 || rc=$?
  [ $rc -ne 0 ] && [ $rc -lt 128 ] || { cat "$DIR/out"; fail "$* exited with $rc"; }
  grep -q "$text" "$DIR/out" || { cat "$DIR/out"; fail "$* did not say '$text'"; }
}
expect_error "unknown type" "$FERRUM" quantize "$MODEL" "$DIR/x.gguf" Q3_K_M
expect_error "unknown type" "$FERRUM" quantize "$MODEL" "$DIR/x.gguf" Q9
expect_error "takes a model folder" "$FERRUM" quantize --dummy "$DIR/tiny-f16.gguf" "$DIR/x.gguf" Q8_0
expect_error "does not exist" "$FERRUM" quantize /nonexistent "$DIR/x.gguf" F16
expect_error "requires --dummy" "$FERRUM" quantize --random-blocks "$MODEL" "$DIR/x.gguf" Q4_K_M
head -c 3000 "$DIR/tiny-q8.gguf" >"$DIR/cut.gguf"
expect_error "cut.gguf" "$FERRUM" generate -m "$DIR/cut.gguf" -p hi -n 2
echo "PASS"
