# End to end: speculative decoding through `ferrum generate` and `ferrum serve` on the fixture
# model: greedy ids unchanged with n-gram lookup and with a draft model, the acceptance
# counters in /metrics and in `ferrum bench serve`'s output, and a draft with another tokenizer
# refused with a clear message.
SERVER_NEEDS_NODE=0
source "$(dirname "$0")/server_common.bash"
command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
OUT=$(mktemp)
ERR=$(mktemp)
trap '[ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null; rm -f "$SERVER_LOG" "$OUT" "$ERR"' EXIT
DRAFT=tests/fixtures/models/tiny-llama-mqa
expect_text() {  # expect_text FILE TEXT
  grep -qF -- "$2" "$1" || { cat "$OUT" "$ERR"; echo "FAIL: expected '$2' in $1"; exit 1; }
}
# check_json EXPR...: each Python expression must hold for j, the JSON on stdout's last line.
check_json() {
  python3 - "$OUT" "$@" <<'PY'
import json, sys
j = json.loads(open(sys.argv[1]).read().splitlines()[-1])
for expr in sys.argv[2:]:
    if not eval(expr, {"j": j}):
        sys.exit(f"FAIL: {expr} does not hold for {json.dumps(j, indent=1)}")
PY
}
PROMPT="the cat sat on the mat, the cat sat on the mat, the cat sat on the"

ids() {  # ids ARGS...: the generated ids of `ferrum generate --json` (greedy)
  "$FERRUM" generate -m "$MODEL" -p "$PROMPT" -n 24 --temp 0 --ignore-eos --json "$@" 2>"$ERR" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ids"])'
}
PLAIN=$(ids)
for flags in "--spec-ngram" "--spec-ngram --spec-tokens 2" "--spec-draft $DRAFT --spec-tokens 3"; do
  # shellcheck disable=SC2086
  GOT=$(ids $flags)
  [ "$GOT" = "$PLAIN" ] || { cat "$ERR"; echo "FAIL: generate $flags gave $GOT, not $PLAIN"; exit 1; }
  expect_text "$ERR" "speculative decoding:"
done

rc=0
"$FERRUM" generate -m "$MODEL" -p "$PROMPT" -n 4 --spec-draft tests/fixtures/models/tiny-mistral >"$OUT" 2>"$ERR" || rc=$?
[ "$rc" -ne 0 ] || { echo "FAIL: a draft with another tokenizer was accepted"; exit 1; }
expect_text "$ERR" "a draft model must share the target's tokenizer"

for flags in "--spec-ngram --spec-tokens 3" "--spec-draft $DRAFT"; do
  # shellcheck disable=SC2086
  start_server --max-num-seqs 8 $flags
  rc=0
  "$FERRUM" bench serve --url "$FERRUM_URL" --model tiny-llama -c 2 -n 6 --input-len 24 --output-len 16 \
    --vocab-size 1024 --warmup 0 --quiet --json >"$OUT" 2>"$ERR" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$OUT" "$ERR" "$SERVER_LOG"; echo "FAIL: bench serve exited $rc"; exit 1; }
  check_json 'j["completed"] == 6' 'j["out_tok_s"] > 0' 'j["spec_decode_draft_tokens"] is not None'
  if [[ $flags == *draft* ]]; then  # random prompts: only the draft model is sure to propose
    check_json 'j["spec_decode_draft_tokens"] > 0' '0 <= j["spec_decode_acceptance_rate"] <= 1' \
      'j["spec_decode_mean_accepted_length"] >= 1'
    expect_text "$OUT" "Spec decode acceptance rate:"
  fi
  curl -sf "$FERRUM_URL/metrics" >"$OUT"
  expect_text "$OUT" "ferrum_spec_decode_num_accepted_tokens_total"
  expect_text "$OUT" "ferrum_spec_decode_mean_accepted_length"
  expect_text "$SERVER_LOG" "speculative decoding"
  stop_server
done
echo "PASS"
