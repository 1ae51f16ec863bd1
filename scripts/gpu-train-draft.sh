#!/usr/bin/env bash
# Trains ferrum-tiny-draft (issue 15) on the GPU machine (PyTorch with CUDA, transformers and
# tokenizers; no network): run from the repo root. Needs the KJV text at .carry/tinydata/kjv.txt
# (scripts/pack-for-gpu.sh --kjv extracts it where Debian's bible-kjv is installed; see
# docs/ferrum-tiny.md). Writes $OUT/ferrum-tiny-draft (the Hugging Face folder: bf16
# safetensors, ferrum-tiny's tokenizer files, README.md, training.json) and $OUT/train-draft.log.
# With a ferrum binary at $FERRUM (default .carry/bin/ferrum), it then checks that ferrum loads
# the draft and that greedy ids with it are ferrum-tiny's own.
# Extra arguments go to tools/train_draft_model.py (e.g. --smoke, --layers 3, --distill 0.5).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder for the results}
KJV=${KJV:-.carry/tinydata/kjv.txt}
FERRUM=${FERRUM:-.carry/bin/ferrum}
[ -f "$KJV" ] || { echo "no KJV text at $KJV: run scripts/pack-for-gpu.sh --kjv (or tools/tiny_data.py --extract) where bible-kjv is installed, and carry .carry"; exit 1; }
mkdir -p "$OUT"
DRAFT=$OUT/ferrum-tiny-draft
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
python3 tools/train_draft_model.py --kjv "$KJV" --target models/ferrum-tiny --out "$DRAFT" "$@" 2>&1 |
  tee "$OUT/train-draft.log"
ls -l "$DRAFT"

if [ -x "$FERRUM" ]; then
  [ -d .carry/lib ] && export LD_LIBRARY_PATH=.carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  prompt="And God said, Let there be"
  for dev in cuda cpu; do
    plain=$("$FERRUM" generate -m models/ferrum-tiny --device $dev -p "$prompt" -n 64 --temp 0 --json 2>/dev/null) ||
      { echo "ferrum $dev: generate failed"; continue; }
    spec=$("$FERRUM" generate -m models/ferrum-tiny --device $dev -p "$prompt" -n 64 --temp 0 --json \
           --spec-draft "$DRAFT" --spec-tokens 3 2>"$OUT/generate-$dev.log") ||
      { echo "ferrum $dev: generate with the draft failed:"; tail -3 "$OUT/generate-$dev.log"; continue; }
    if [ "$plain" = "$spec" ]; then echo "ferrum $dev: greedy ids with the draft = without (ok)"
    else echo "ferrum $dev: greedy ids differ with the draft!"; echo "without: $plain"; echo "with:    $spec"; fi
  done | tee "$OUT/check-draft.log"
fi
