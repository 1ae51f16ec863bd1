"""Decode speed of transformers (PyTorch eager, bf16) on a random-weight model of a config.json,
on the GPU: the baseline ferrum's CUDA numbers in docs/bench/ are compared with.

usage: python tools/hf_decode_baseline.py bench/configs/llama-3.1-8b [prompt_tokens] [gen_tokens]
"""
import json
import sys
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM

path = sys.argv[1]
prompt = int(sys.argv[2]) if len(sys.argv) > 2 else 128
gen = int(sys.argv[3]) if len(sys.argv) > 3 else 64
config = AutoConfig.from_pretrained(path)
with torch.device("cuda"):
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16)
model.eval()
ids = torch.randint(0, config.vocab_size, (1, prompt), device="cuda")
kw = dict(max_new_tokens=gen, min_new_tokens=gen, do_sample=False, pad_token_id=0)
with torch.no_grad():
    model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    model(ids)
    torch.cuda.synchronize()
    prefill = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.generate(ids, **kw)
    torch.cuda.synchronize()
    total = time.perf_counter() - t0
decode = (total - prefill) / (gen - 1)
print(json.dumps({"model": path, "torch": torch.__version__, "gpu": torch.cuda.get_device_name(),
                  "prefill_tok_s": prompt / prefill, "decode_tok_s": 1.0 / decode}))
