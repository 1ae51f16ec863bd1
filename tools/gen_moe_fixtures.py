#!/usr/bin/env python3
"""Writes tiny random-weight mixture-of-experts checkpoints (Qwen3-MoE, Qwen2-MoE) under
tests/fixtures/models/ with transformers' own float32 outputs as golden references, the same
way tools/gen_fixtures.py does for the dense ones (same prompts, same reference format).

Runs where torch + transformers are installed (the GPU machine; CPU is enough):
    python3 tools/gen_moe_fixtures.py --tokenizer tests/fixtures/models/tiny-qwen3 --out OUTDIR

Experts are written the way published checkpoints store them, one tensor per expert
(mlp.experts.N.{gate,up,down}_proj.weight), whatever layout the installed transformers keeps
in memory (v5 fuses them into mlp.experts.gate_up_proj / down_proj); the script then loads the
written folder back with from_pretrained and checks that its logits equal the in-memory
model's, so a wrong split fails here and not in the C++ tests.

Fixtures:
- tiny-qwen3-moe: 8 experts, top 2, norm_topk_prob true, layer 1 dense (mlp_only_layers);
- tiny-qwen3-moe-nonorm: norm_topk_prob false, decoder_sparse_step 2 (layers 1 and 3 sparse);
- tiny-qwen2-moe: Qwen2-MoE's shared expert with its sigmoid gate, q/k/v bias.
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import random_model, references  # noqa: E402

ARCHITECTURES = {"qwen3_moe": "Qwen3MoeForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM"}


def per_expert_state_dict(model):
    """The state dict with fused expert tensors split into published per-expert names."""
    out = {}
    cfg = model.config
    for k, v in model.state_dict().items():
        if cfg.tie_word_embeddings and k == "lm_head.weight":
            continue
        if k.endswith("mlp.experts.gate_up_proj"):  # [E, 2 I, H]: gate rows, then up rows
            prefix = k[: -len("gate_up_proj")]
            inter = v.shape[1] // 2
            for e in range(v.shape[0]):
                out[f"{prefix}{e}.gate_proj.weight"] = v[e, :inter].clone()
                out[f"{prefix}{e}.up_proj.weight"] = v[e, inter:].clone()
        elif k.endswith("mlp.experts.down_proj"):  # [E, H, I]
            prefix = k[: -len("down_proj")]
            for e in range(v.shape[0]):
                out[f"{prefix}{e}.down_proj.weight"] = v[e].clone()
        else:
            out[k] = v
    return out


def make(name, arch_cfg, dtype, tok_dir, out_root, seed):
    out_dir, model = random_model(name, arch_cfg, ARCHITECTURES, tok_dir, out_root, seed)
    config = model.config
    with torch.no_grad():  # the weights as the checkpoint will hold them (rounded to dtype)
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))
    sd = {k: v.detach().to(dtype).contiguous() for k, v in per_expert_state_dict(model).items()}
    save_file(sd, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    model.config.torch_dtype = dtype
    model.config.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id, "do_sample": False}, f,
                  indent=2)

    # The written folder must load back into the same model (no missing or unexpected keys).
    probe = torch.tensor([[1, 5, 9, 200, 17, 3, 44]])
    model.eval()
    with torch.no_grad():
        want = model(probe).logits
    loaded, info = AutoModelForCausalLM.from_pretrained(out_dir, torch_dtype=torch.float32,
                                                        attn_implementation="eager", output_loading_info=True)
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        raise SystemExit(f"{name}: the per-expert checkpoint does not load back: {bad}")
    with torch.no_grad():
        got = loaded(probe).logits
    err = (got - want).abs().max().item()
    if err > 1e-4:
        raise SystemExit(f"{name}: reloaded logits differ by {err}")
    refs = references(out_dir)
    print(name, "margins", [round(p["min_greedy_margin"], 4) for p in refs["prompts"]], "bytes",
          sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir)), "reload err", err)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True, help="a fixture folder whose tokenizer to reuse (tiny-qwen3)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(8)
    with open(os.path.join(args.tokenizer, "config.json")) as f:
        base = json.load(f)
    common = dict(vocab_size=base["vocab_size"], bos_token_id=base["bos_token_id"], eos_token_id=base["eos_token_id"],
                  hidden_act="silu", max_position_embeddings=256, initializer_range=0.3, hidden_size=64,
                  num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
                  tie_word_embeddings=True, use_sliding_window=False, num_experts=8, num_experts_per_tok=2,
                  router_aux_loss_coef=0.001, output_router_logits=False)
    make("tiny-qwen3-moe", dict(model_type="qwen3_moe", head_dim=32, num_hidden_layers=3, intermediate_size=128,
                                moe_intermediate_size=32, norm_topk_prob=True, decoder_sparse_step=1,
                                mlp_only_layers=[1], attention_bias=False, **common),
         torch.bfloat16, args.tokenizer, args.out, 11)
    make("tiny-qwen3-moe-nonorm", dict(model_type="qwen3_moe", head_dim=32, num_hidden_layers=4,
                                       intermediate_size=96, moe_intermediate_size=48, norm_topk_prob=False,
                                       decoder_sparse_step=2, mlp_only_layers=[], attention_bias=False, **common),
         torch.bfloat16, args.tokenizer, args.out, 12)
    make("tiny-qwen2-moe", dict(model_type="qwen2_moe", num_hidden_layers=2, intermediate_size=128,
                                moe_intermediate_size=32, shared_expert_intermediate_size=64, norm_topk_prob=False,
                                decoder_sparse_step=1, mlp_only_layers=[], qkv_bias=True, **common),
         torch.bfloat16, args.tokenizer, args.out, 13)


if __name__ == "__main__":
    main()
