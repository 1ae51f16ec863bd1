# ORG/NAME:QUANT against a local stand-in for the Hugging Face hub (tests/js/fake_hub.mjs): a
# GGUF repo's file of that quantization is downloaded into the hub cache (that file only) and
# run; the cache answers the second time without the network; a quantization the repo lacks
# gets a message naming those it has.
set -euo pipefail
FERRUM=$(realpath "${1:?usage: bash $0 /path/to/ferrum}")
WORK=$(mktemp -d)
HUB_PID=""
trap '[ -n "$HUB_PID" ] && kill "$HUB_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; [ -f "$WORK/hub.log" ] && tail -20 "$WORK/hub.log"; exit 1; }

mkdir "$WORK/repo"
"$FERRUM" quantize models/ferrum-tiny "$WORK/repo/ferrum-tiny-Q8_0.gguf" Q8_0 2>/dev/null
"$FERRUM" quantize models/ferrum-tiny "$WORK/repo/ferrum-tiny-Q4_K_M.gguf" Q4_K_M 2>/dev/null
echo "# ferrum-tiny GGUF" >"$WORK/repo/README.md"
FAKE_HUB_DIR=$WORK/repo FAKE_HUB_LOG=$WORK/hub.log node tests/js/fake_hub.mjs >"$WORK/port" &
HUB_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
export HF_ENDPOINT="http://127.0.0.1:$(cat "$WORK/port")" HF_HOME="$WORK/hf"
unset HF_HUB_CACHE HUGGINGFACE_HUB_CACHE HF_TOKEN HUGGING_FACE_HUB_TOKEN

"$FERRUM" pull ferrum-test/tiny-llama:q4_k_m >"$WORK/out" 2>&1 || fail "pull: $(cat "$WORK/out")"
GOT=$(tail -1 "$WORK/out")
case "$GOT" in */snapshots/*/ferrum-tiny-Q4_K_M.gguf) ;; *) fail "pull printed '$GOT'" ;; esac
cmp -s "$GOT" "$WORK/repo/ferrum-tiny-Q4_K_M.gguf" || fail "the downloaded file differs"
[ "$(grep -c "^GET /cdn" "$WORK/hub.log")" = 1 ] || fail "downloaded more than the one file"

WANT=$("$FERRUM" generate -m "$WORK/repo/ferrum-tiny-Q4_K_M.gguf" -p "Once upon a time" -n 8 --temp 0 2>/dev/null)
kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null || true; HUB_PID=""
# The hub is gone: the cache serves the reference.
OUT=$("$FERRUM" generate -m ferrum-test/tiny-llama:Q4_K_M -p "Once upon a time" -n 8 --temp 0 2>"$WORK/err") ||
  fail "generate from the cache: $(cat "$WORK/err")"
[ "$OUT" = "$WANT" ] || fail "generate printed '$OUT', the file '$WANT'"

FAKE_HUB_DIR=$WORK/repo FAKE_HUB_LOG=$WORK/hub.log node tests/js/fake_hub.mjs >"$WORK/port2" &
HUB_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port2" ] && break; sleep 0.05; done
export HF_ENDPOINT="http://127.0.0.1:$(cat "$WORK/port2")"
rc=0
"$FERRUM" pull ferrum-test/tiny-llama:Q2_K >"$WORK/out2" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -lt 128 ] || fail "pull of a missing quantization exited $rc"
grep -q "Q8_0" "$WORK/out2" && grep -q "Q4_K_M" "$WORK/out2" || fail "no list of quantizations: $(cat "$WORK/out2")"
echo "PASS"
