# `ferrum pull` / `list` / serving a repo id, against a local server that mimics the Hugging
# Face hub (tests/js/fake_hub.mjs): cache layout, resume after a dropped connection, HF_TOKEN
# for gated repos, revisions, and models found in the cache without network.
set -euo pipefail
FERRUM=$(realpath "${1:?usage: bash $0 /path/to/ferrum}")
SRC=tests/fixtures/models/tiny-llama
WORK=$(mktemp -d)
HUB_PID=""
trap '[ -n "$HUB_PID" ] && kill "$HUB_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; [ -f "$WORK/hub.log" ] && tail -20 "$WORK/hub.log"; exit 1; }

FAKE_HUB_DIR=$SRC FAKE_HUB_LOG=$WORK/hub.log FAKE_HUB_CUT_AFTER=100000 node tests/js/fake_hub.mjs >"$WORK/port" &
HUB_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
export HF_ENDPOINT="http://127.0.0.1:$(cat "$WORK/port")" HF_HOME="$WORK/hf"
unset HF_HUB_CACHE HUGGINGFACE_HUB_CACHE HF_TOKEN HUGGING_FACE_HUB_TOKEN
REPO=$HF_HOME/hub/models--ferrum-test--tiny-llama

# 1. The first download drops mid-file: a clear error, the partial blob kept.
if "$FERRUM" pull ferrum-test/tiny-llama >"$WORK/out1" 2>&1; then fail "pull succeeded through a dropped connection"; fi
grep -q "resume" "$WORK/out1" || fail "no resume hint: $(cat "$WORK/out1")"
ls "$REPO"/blobs/*.incomplete >/dev/null 2>&1 || fail "no partial blob kept"

# 2. Again: resumes with a Range request and completes.
"$FERRUM" pull ferrum-test/tiny-llama >"$WORK/out2" 2>&1 || fail "second pull: $(cat "$WORK/out2")"
grep -q "GET /cdn/.* range=bytes=100000-" "$WORK/hub.log" || fail "the download was not resumed with a Range request"
COMMIT=0123456789abcdef0123456789abcdef01234567
[ "$(cat "$REPO/refs/main")" = "$COMMIT" ] || fail "refs/main"
SNAP=$REPO/snapshots/$COMMIT
[ "$(tail -1 "$WORK/out2")" = "$SNAP" ] || fail "pull should print the snapshot folder"
for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
  [ -L "$SNAP/$f" ] || fail "$f is not a symlink into blobs/"
  cmp -s "$SNAP/$f" "$SRC/$f" || fail "$f differs from the source"
done
SHA=$(sha256sum "$SRC/model.safetensors" | cut -d' ' -f1)
[ "$(readlink "$SNAP/model.safetensors")" = "../../blobs/$SHA" ] || fail "LFS blob not named by its sha256"
[ ! -e "$SNAP/pytorch_model.bin" ] && [ ! -e "$SNAP/onnx" ] && [ ! -e "$SNAP/README.md" ] || fail "downloaded files a model does not need"
ls "$REPO"/blobs/*.incomplete >/dev/null 2>&1 && fail "partial blob left behind"

# 3. A second pull downloads nothing new.
BEFORE=$(grep -c "^GET /cdn" "$WORK/hub.log")
"$FERRUM" pull ferrum-test/tiny-llama:v1 >/dev/null 2>&1 || fail "pull of tag v1"
[ "$(grep -c "^GET /cdn" "$WORK/hub.log")" = "$BEFORE" ] || fail "cached blobs were downloaded again"
[ "$(cat "$REPO/refs/v1")" = "$COMMIT" ] || fail "refs/v1"

# 4. Gated repo: 401 without a token (the message says HF_TOKEN), works with one; the token
#    never goes to the CDN (the fake CDN answers 400 if it does).
if "$FERRUM" pull ferrum-test/gated >"$WORK/out3" 2>&1; then fail "gated repo without token"; fi
grep -q "HF_TOKEN" "$WORK/out3" || fail "no HF_TOKEN hint: $(cat "$WORK/out3")"
HF_TOKEN=hf_secret "$FERRUM" pull ferrum-test/gated >"$WORK/out4" 2>&1 || fail "gated with token: $(cat "$WORK/out4")"

# 5. Unknown repo and bad ids.
if "$FERRUM" pull ferrum-test/nope >"$WORK/out5" 2>&1; then fail "unknown repo"; fi
grep -q "404" "$WORK/out5" || fail "no 404 in: $(cat "$WORK/out5")"
if "$FERRUM" pull "../../etc" >/dev/null 2>&1; then fail "accepted a path as repo id"; fi

# 6. list shows both repos with sizes.
"$FERRUM" list >"$WORK/list" || fail "list"
grep -q "^ferrum-test/tiny-llama .* [0-9.]* KB .*main -> 0123456789ab" "$WORK/list" || fail "list: $(cat "$WORK/list")"
grep -q "^ferrum-test/gated" "$WORK/list" || fail "list lacks the gated repo"

# 7. Without the hub, the cached repo id serves and runs.
kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null || true; HUB_PID=""
echo "Say hi" | "$FERRUM" run ferrum-test/tiny-llama -n 4 --temp 0 >"$WORK/run" 2>"$WORK/run.err" || fail "run from cache: $(cat "$WORK/run.err")"
[ -s "$WORK/run" ] || fail "run printed nothing"
if "$FERRUM" run ferrum-test/not-cached -n 1 </dev/null >/dev/null 2>"$WORK/run2.err"; then fail "ran a model that is not cached, with no hub"; fi
echo "PASS"
