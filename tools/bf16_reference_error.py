"""How far transformers' own 16-bit run of each fixture is from its float32 reference: the
relative logit error (as tests/models/golden_test.cpp measures it) at every recorded row,
teacher-forced on the reference tokens, and how many greedy picks change. This is the yardstick
for ferrum's CUDA tolerance: ferrum's GPU run must be no further from float32 than this.

usage (on the GPU machine): python tools/bf16_reference_error.py tests/fixtures/models/*
"""
import json
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

for d in sys.argv[1:]:
    cfg = AutoConfig.from_pretrained(d)
    dtype = {"float32": torch.float32, "float16": torch.float16}.get(str(getattr(cfg, "dtype", None) or cfg.torch_dtype).replace("torch.", ""), torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=dtype).cuda().eval()
    ref = json.load(open(f"{d}/reference.json"))
    logits = load_file(f"{d}/reference.safetensors")
    worst, flips = 0.0, 0
    for i, p in enumerate(ref["prompts"]):
        seq = p["prompt_ids"] + p["greedy_ids"][:-1]
        with torch.no_grad():
            out = model(torch.tensor([seq], device="cuda")).logits[0].float().cpu()
        n = len(p["prompt_ids"])
        flips += sum(int(out[n - 1 + k].argmax()) != g for k, g in enumerate(p["greedy_ids"]))
        for r, row in enumerate(p["logit_rows"]):
            a, b = out[row].double(), logits[f"logits_{i}"][r].double()
            worst = max(worst, float(((a - b).norm() / b.norm())))
    print(json.dumps({"fixture": d, "dtype": str(dtype), "max_rel_error": worst, "greedy_flips": flips,
                      "greedy_total": sum(len(p["greedy_ids"]) for p in ref["prompts"])}))
