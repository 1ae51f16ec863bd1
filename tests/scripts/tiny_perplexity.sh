#!/usr/bin/env bash
# `ferrum perplexity` end to end (tokenizer + model + CLI) on ferrum-tiny's held-out text: the
# token count and the perplexity that PyTorch recorded at training time
# (models/ferrum-tiny/reference.json, ctx 256), the latter within 1e-3 relative.
set -euo pipefail
ferrum="$1"
dir=models/ferrum-tiny
if [ ! -f "$dir/reference.json" ]; then
  echo "FAIL: $dir/reference.json is missing: the shipped model is incomplete (see docs/ferrum-tiny.md)"
  exit 1
fi
json=$("$ferrum" perplexity -m "$dir" --file "$dir/heldout.txt" --ctx 256 -t 2 --json)
node -e '
  const got = JSON.parse(process.argv[1]);
  const ref = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
  const want = ref.perplexity.results.find(r => r.ctx === 256);
  const rel = Math.abs(got.ppl - want.ppl) / want.ppl;
  console.log(`ferrum ${got.ppl} PyTorch ${want.ppl} relative ${rel.toExponential(2)}; tokens ${got.num_tokens}/${ref.perplexity.token_ids.length}`);
  if (got.num_tokens !== ref.perplexity.token_ids.length) { console.error("FAIL: token count differs"); process.exit(1); }
  if (!(rel < 1e-3)) { console.error("FAIL: perplexity differs"); process.exit(1); }
' "$json" "$dir/reference.json"
# The llama.cpp-style report ends with the final estimate line.
"$ferrum" perplexity -m "$dir" --file "$dir/heldout.txt" --ctx 512 -t 2 | grep -E '^Final estimate: PPL = [0-9.]+ \+/- [0-9.]+$'
# Bad input: a clear error and a non-zero exit.
if "$ferrum" perplexity -m "$dir" --file "$dir/heldout.txt" --ctx 4096 >/dev/null 2>/tmp/ferrum_ppl_err.$$; then
  echo "FAIL: --ctx 4096 was accepted"; exit 1
fi
grep -q "max_position_embeddings" /tmp/ferrum_ppl_err.$$ && rm -f /tmp/ferrum_ppl_err.$$
echo "tiny_perplexity: ok"
