# `ferrum run` in a terminal (script(1) gives it a pseudo-terminal): prompts, a line continued
# with '\', a """ block, /clear, /bye, and a clean exit.
set -euo pipefail
FERRUM=$(realpath "${1:?usage: bash $0 /path/to/ferrum}")
MODEL=tests/fixtures/models/tiny-llama
if ! command -v script >/dev/null; then echo "SKIP: script(1) not installed"; exit 0; fi
OUT=$(printf 'first \\\nsecond\n"""\nblock a\nblock b\n"""\n/clear\nhello\n/bye\nnever read\n' |
      timeout 60 script -qec "$FERRUM run $MODEL -n 4 --temp 0" /dev/null | tr -d '\r')
fail() { echo "FAIL: $*"; echo "$OUT"; exit 1; }
# Prompts: turn 1 (a continued line: one '...'), turn 2 (a block: three '...'), /clear, turn 3, /bye.
[ "$(grep -o '>>> ' <<<"$OUT" | wc -l)" -eq 5 ] || fail "expected 5 prompts"
[ "$(grep -o '\.\.\. ' <<<"$OUT" | wc -l)" -eq 4 ] || fail "expected 4 continuation prompts"
grep -q "(conversation cleared)" <<<"$OUT" || fail "/clear did not answer"
echo "PASS"
