# --kv-cache-dtype on the command line: values other than auto / fp8 / fp8_e4m3 are refused by
# the parser, and fp8 on the CPU (whose KV cache is exact F32) fails at load with a message
# that says so, for run, serve and bench; auto runs as before.
set -u
FERRUM=$1
MODEL=models/ferrum-tiny
expect_refusal() {  # expect_refusal PATTERN COMMAND...: fails unless COMMAND exits non-zero printing PATTERN
  local pattern=$1
  shift
  local out
  if out=$("$@" </dev/null 2>&1); then echo "FAIL: accepted: $*"; exit 1; fi
  if ! grep -q -- "$pattern" <<<"$out"; then echo "FAIL: '$*' said: $out"; exit 1; fi
}
expect_refusal "kv-cache-dtype" "$FERRUM" run "$MODEL" --kv-cache-dtype fp16
expect_refusal "kv-cache-dtype fp8 is not supported on cpu" "$FERRUM" run "$MODEL" --kv-cache-dtype fp8
expect_refusal "kv-cache-dtype fp8 is not supported on cpu" "$FERRUM" serve "$MODEL" --port 0 --kv-cache-dtype fp8_e4m3
expect_refusal "kv-cache-dtype fp8 is not supported on cpu" "$FERRUM" bench -m "$MODEL" -p 8 -n 4 -c '' --kv-cache-dtype fp8
OUT=$("$FERRUM" bench -m "$MODEL" -p 8 -n 4 -c '' --kv-cache-dtype auto 2>&1) || { echo "FAIL: bench with auto: $OUT"; exit 1; }
grep -q "KV cache F32" <<<"$OUT" || { echo "FAIL: bench did not report the F32 cache: $OUT"; exit 1; }
echo "PASS"
