#!/usr/bin/env python3
"""How often does a random-weight model pick the same greedy token when the same position is
computed in a different batch shape? (issue 15: the 8B-shape self-draft accepted nothing in bf16
on the GPU, but every proposal in float32.)

A self-draft proposes each token with a one-row decode step; the target verifies it in a
K+1-row step. Both compute the same function, so they disagree only through rounding, and
rounding only matters where the top two logits are closer than the rounding noise. This script
measures that with transformers alone, as an independent reference: a random model of a given
config (transformers' own initialization), greedy decoding with its KV cache (one row a step),
then one forward pass over the whole sequence (every row at once), and how often the two argmaxes
agree at each generated position; in bfloat16 and in float32 on the same (bf16-rounded) weights.

  python3 tools/random_greedy_agreement.py CONFIG_DIR [--layers N] [--tokens 64] [--save DIR]
--save writes the model (bf16 and f32 safetensors, DIR/bf16 and DIR/f32, with CONFIG_DIR's
tokenizer files) for ferrum to run the same weights as its own draft, and DIR/greedy.json: the
prompt's ids and transformers' greedy tokens in each dtype, which
tools/compare_greedy_with_server.py compares with a ferrum server's. Needs a CUDA GPU.
"""
import argparse
import json
import os
import shutil

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def measure(model, prompt, tokens):
    out = model.generate(prompt, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                         output_logits=True, return_dict_in_generate=True, pad_token_id=0)
    seq = out.sequences
    step_logits = torch.stack(out.logits, dim=1)[0].float()  # [tokens, vocab], one row a step
    with torch.no_grad():
        full = model(seq).logits[0].float()  # every position in one pass
    p = prompt.shape[1]
    full = full[p - 1: p - 1 + tokens]
    gen = seq[0, p:]
    top2 = torch.topk(step_logits, 2, dim=-1).values
    std = step_logits.std(dim=-1)
    return {
        "agree": int((full.argmax(-1) == gen).sum()),
        "positions": tokens,
        "first_disagreement": int(next((i for i in range(tokens) if full[i].argmax() != gen[i]), -1)),
        "mean_abs_logit_diff_over_std": float(((full - step_logits).abs().mean(-1) / std).mean()),
        "median_top1_top2_gap_over_std": float(((top2[:, 0] - top2[:, 1]) / std).median()),
    }, gen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config_dir")
    ap.add_argument("--layers", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default="")
    a = ap.parse_args()
    cfg = AutoConfig.from_pretrained(a.config_dir)
    if a.layers:
        cfg.num_hidden_layers = a.layers
    torch.manual_seed(a.seed)
    torch.set_default_device("cuda")
    model = AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16).eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, a.prompt_len), generator=torch.Generator("cuda").manual_seed(a.seed),
                           device="cuda")
    report = {"config": os.path.basename(os.path.normpath(a.config_dir)), "layers": cfg.num_hidden_layers,
              "init_std": cfg.initializer_range}
    gens = {}
    for name, dtype in (("bf16", torch.bfloat16), ("f32", torch.float32)):
        m = model.to(dtype)
        report[name], gens[name] = measure(m, prompt, a.tokens)
        if a.save:
            d = os.path.join(a.save, name)
            m.save_pretrained(d, safe_serialization=True)
            for f in ("tokenizer.json", "tokenizer_config.json"):
                if os.path.exists(os.path.join(a.config_dir, f)):
                    shutil.copy(os.path.join(a.config_dir, f), d)
    if a.save:
        with open(os.path.join(a.save, "greedy.json"), "w") as f:
            json.dump({"prompt": prompt[0].tolist(), **{k: v.tolist() for k, v in gens.items()}}, f)
    report["bf16_vs_f32_same_greedy_tokens"] = int((gens["bf16"] == gens["f32"]).sum())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
