#!/usr/bin/env python3
"""Trains ferrum-tiny-draft: a smaller Llama model that drafts tokens for ferrum-tiny in
speculative decoding (issue 15: `ferrum serve models/ferrum-tiny --spec-draft DIR`).

- Tokenizer: models/ferrum-tiny's own, its files copied byte for byte (a draft must tokenize
  exactly as its target; ferrum checks it token for token at start-up).
- Data: ferrum-tiny's training documents (tools/tiny_data.py with the same seed and chats);
  the validation books choose the checkpoint, Revelation stays held out.
- Objective: by default the draft learns the target's own next-token distributions
  (distillation, KL(target || draft) at temperature 1), which is what acceptance rewards;
  --distill 0 trains on the text alone, values between mix the two losses.

Each evaluation reports, on the validation books, the draft's loss and the two numbers that
predict speculative acceptance per proposed token: how often the draft's argmax is the target's
(greedy requests), and the mean of sum_v min(p_v, q_v) (sampling at temperature 1). The kept
checkpoint is the one with the lowest validation KL (or loss, with --distill 0).

Needs PyTorch with a GPU, transformers and tokenizers (as tools/train_tiny_model.py). From the
repo root (scripts/gpu-train-draft.sh does this on the GPU machine):
    python3 tools/tiny_data.py --kjv .carry/tinydata/kjv.txt --extract   # where `bible` exists
    python3 tools/train_draft_model.py --kjv .carry/tinydata/kjv.txt --out models/ferrum-tiny-draft
"""
import argparse
import json
import os
import shutil
import sys
import time

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny_data  # noqa: E402
import tiny_export  # noqa: E402
from train_tiny_model import lr_at, make_config, token_stream  # noqa: E402

# Copied from the target unchanged: the draft tokenizes, stops and chats exactly as it does.
TARGET_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")


def load_target(path, device):
    try:
        model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)
    except TypeError:  # transformers before 4.56 names it torch_dtype
        model = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def autocast(device):
    return torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")


def draft_loss(logits, targets, teacher_logits, distill):
    """(1 - distill) x cross-entropy on the text + distill x KL(teacher || draft), per token."""
    vocab = logits.shape[-1]
    log_q = F.log_softmax(logits.float().reshape(-1, vocab), dim=-1)
    loss = 0.0
    if distill < 1.0:
        loss = (1.0 - distill) * F.nll_loss(log_q, targets.reshape(-1))
    if distill > 0.0:
        log_p = F.log_softmax(teacher_logits.float().reshape(-1, vocab), dim=-1)
        loss = loss + distill * F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
    return loss


@torch.no_grad()
def evaluate(draft, teacher, ids, seq_len, device):
    """Per token over non-overlapping windows: the draft's loss, KL(teacher || draft), greedy
    agreement and sum_v min(p_v, q_v) (the expected acceptance of a sampled proposal)."""
    draft.eval()
    sums = {"loss": 0.0, "kl": 0.0, "greedy_agreement": 0.0, "sampled_acceptance": 0.0}
    count = 0
    for start in range(0, len(ids) - 1, seq_len):
        chunk = torch.tensor(ids[start:start + seq_len + 1], device=device)
        if len(chunk) < 2:
            break
        x, y = chunk[None, :-1], chunk[1:]
        with autocast(device):
            q_logits = draft(input_ids=x, use_cache=False).logits[0].float()
            p_logits = teacher(input_ids=x, use_cache=False).logits[0].float()
        log_q, log_p = F.log_softmax(q_logits, dim=-1), F.log_softmax(p_logits, dim=-1)
        p = log_p.exp()
        sums["loss"] += F.nll_loss(log_q, y, reduction="sum").item()
        sums["kl"] += (p * (log_p - log_q)).sum().item()
        sums["greedy_agreement"] += (q_logits.argmax(-1) == p_logits.argmax(-1)).sum().item()
        sums["sampled_acceptance"] += torch.minimum(p, log_q.exp()).sum().item()
        count += len(chunk) - 1
    draft.train()
    return {k: round(v / count, 4) for k, v in sums.items()}


def train(draft, teacher, train_ids, valid_ids, args, device):
    decay = [p for p in draft.parameters() if p.dim() >= 2]
    no_decay = [p for p in draft.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), **({"fused": True} if device == "cuda" else {}))
    data = torch.tensor(train_ids, dtype=torch.long, device=device)
    offsets = torch.arange(args.seq_len + 1, device=device)
    gen = torch.Generator().manual_seed(args.seed)
    select = "kl" if args.distill > 0 else "loss"
    best = {select: float("inf"), "step": -1, "state": None}
    log = []
    draft.train()
    t0 = time.time()
    steps_done = 0
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        starts = torch.randint(0, len(train_ids) - args.seq_len - 1, (args.batch,), generator=gen)
        chunk = data[starts.to(device)[:, None] + offsets]
        x, y = chunk[:, :-1], chunk[:, 1:]
        with autocast(device):
            logits = draft(input_ids=x, use_cache=False).logits
            teacher_logits = None
            if args.distill > 0:
                with torch.no_grad():
                    teacher_logits = teacher(input_ids=x, use_cache=False).logits
        loss = draft_loss(logits, y, teacher_logits, args.distill)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(draft.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps_done = step + 1
        last = steps_done == args.steps or time.time() - t0 > args.max_train_seconds
        if steps_done % args.eval_every == 0 or last:
            metrics = evaluate(draft, teacher, valid_ids, args.seq_len, device)
            elapsed = time.time() - t0
            entry = {"step": steps_done, "train_loss": round(loss.item(), 4), **metrics,
                     "seconds": round(elapsed, 1)}
            log.append(entry)
            print(f"step {steps_done:5d}  train {entry['train_loss']:.4f}  valid loss {metrics['loss']:.4f}"
                  f"  kl {metrics['kl']:.4f}  greedy {metrics['greedy_agreement']:.3f}"
                  f"  sampled {metrics['sampled_acceptance']:.3f}  lr {lr_at(step, args):.2e}  {elapsed:.0f}s",
                  flush=True)
            if metrics[select] < best[select]:
                best = {select: metrics[select], "step": steps_done,
                        "state": {k: v.detach().clone() for k, v in draft.state_dict().items()}}
        if last:
            break
    if steps_done < args.steps:
        print(f"WARNING: stopped at the time cap after {steps_done} of {args.steps} steps", flush=True)
    draft.load_state_dict(best["state"])
    return {"steps": steps_done, "steps_planned": args.steps, "seconds": round(time.time() - t0, 1),
            "best_step": best["step"], "selected_by": "valid_" + select, "log": log}


def write_model_card(out_dir, info):
    c, t = info["config"], info["training"]
    valid, test = info["valid"], info["test"]
    size_mb = os.path.getsize(os.path.join(out_dir, "model.safetensors")) / 1e6
    text = f"""# ferrum-tiny-draft

A draft model for ferrum-tiny (models/ferrum-tiny) in speculative decoding:

    ferrum serve models/ferrum-tiny --spec-draft models/ferrum-tiny-draft --spec-tokens 3

- LlamaForCausalLM: hidden {c['hidden_size']}, {c['num_hidden_layers']} layers, {c['num_attention_heads']} heads,
  {c['num_key_value_heads']} KV heads, MLP {c['intermediate_size']}, tied embeddings, {t['parameters']:,} parameters,
  bf16 weights ({size_mb:.1f} MB).
- Tokenizer, tokenizer_config.json and generation_config.json: ferrum-tiny's, unchanged.
- Trained on ferrum-tiny's training documents (the King James Bible but 1-3 John, Jude and
  Revelation, plus its synthetic chats; public domain, as is this model: CC0), distillation
  weight {t['distill']} (KL(ferrum-tiny || draft); the rest cross-entropy on the text), {t['steps']} steps of
  {t['batch']} x {t['seq_len']} tokens, peak lr {t['lr']}, seed {t['seed']}, {t['seconds']:.0f} s on one {t['device']};
  kept step {t['best_step']} (best {t['selected_by']}).

Agreement with ferrum-tiny per token (bf16 autocast, PyTorch), which is the expected acceptance
of one proposed token:

| text | draft loss | KL(target ‖ draft) | greedy: same argmax | sampled at T=1: sum min(p, q) |
| --- | --- | --- | --- | --- |
| validation (1-3 John, Jude) | {valid['loss']} | {valid['kl']} | {valid['greedy_agreement']} | {valid['sampled_acceptance']} |
| test (Revelation) | {test['loss']} | {test['kl']} | {test['greedy_agreement']} | {test['sampled_acceptance']} |

Reproduce: `scripts/gpu-train-draft.sh` (tools/train_draft_model.py); `training.json` has the log.
"""
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write(text)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kjv", required=True, help="KJV text as `bible -l0 gen1:1-rev22:21` prints it")
    ap.add_argument("--target", default="models/ferrum-tiny", help="the target model folder (its tokenizer is reused)")
    ap.add_argument("--out", required=True, help="model folder to write")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--chats", type=int, default=12000, help="synthetic chats (as ferrum-tiny's training)")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--intermediate", type=int, default=384)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--distill", type=float, default=1.0, help="weight of KL(target || draft); the rest is cross-entropy")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--max-train-seconds", type=float, default=150.0,
                    help="safety cap; a run that hits it is not the planned one (it says so)")
    ap.add_argument("--smoke", action="store_true", help="a few steps, to check the whole pipeline")
    args = ap.parse_args()
    if not 0.0 <= args.distill <= 1.0:
        ap.error("--distill must be in [0, 1]")
    if args.smoke:
        args.steps, args.eval_every, args.batch, args.chats, args.warmup = 20, 10, 4, 300, 5
    return args


def main():
    args = parse_args()
    t_start = time.time()
    import tokenizers
    import transformers
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    device_name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print("versions", versions, "device", device_name, flush=True)

    tok = Tokenizer.from_file(os.path.join(args.target, "tokenizer.json"))
    with open(os.path.join(args.target, "config.json")) as f:
        target_config = json.load(f)
    args.max_positions = target_config["max_position_embeddings"]  # the draft must cover the target's context
    chapters = tiny_data.parse_kjv(args.kjv)
    train_ch, valid_ch, test_ch = tiny_data.split_chapters(chapters)
    docs = tiny_data.build_documents(train_ch, args.chats, args.seed)
    train_ids = token_stream(tok, docs)
    valid_ids = token_stream(tok, [tiny_data.chapter_text(*c) for c in valid_ch])
    test_ids = token_stream(tok, [tiny_data.chapter_text(*c) for c in test_ch])
    print(f"train tokens {len(train_ids):,} (documents {len(docs)}), valid {len(valid_ids):,}, test {len(test_ids):,}"
          f" [{time.time() - t_start:.0f}s]", flush=True)

    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    teacher = load_target(args.target, device)
    torch.manual_seed(args.seed)
    config = make_config(tok, args)
    for key in ("vocab_size", "bos_token_id", "eos_token_id", "pad_token_id", "rope_theta"):
        want = target_config.get(key, (target_config.get("rope_parameters") or {}).get(key))
        have = getattr(config, key, None)
        if have is None:
            have = (getattr(config, "rope_parameters", None) or {}).get(key)
        if want is not None and have is not None and have != want:
            raise SystemExit(f"the draft's {key} would be {have}, the target's is {want}")
    draft = LlamaForCausalLM(config).to(device)
    nparams = sum(p.numel() for p in draft.parameters())
    print(f"draft parameters {nparams:,}", flush=True)
    training = train(draft, teacher, train_ids, valid_ids, args, device)
    training.update({"parameters": nparams, "train_tokens": len(train_ids), "batch": args.batch,
                     "seq_len": args.seq_len, "lr": args.lr, "seed": args.seed, "distill": args.distill,
                     "versions": versions, "device": device_name,
                     "command": "python3 tools/train_draft_model.py " + " ".join(sys.argv[1:])})
    valid = evaluate(draft, teacher, valid_ids, args.seq_len, device)
    test = evaluate(draft, teacher, test_ids, args.seq_len, device)
    print("kept step", training["best_step"], "valid", json.dumps(valid), "test", json.dumps(test), flush=True)

    tiny_export.save_folder(draft, tok, args.out)
    for name in TARGET_FILES:
        shutil.copyfile(os.path.join(args.target, name), os.path.join(args.out, name))
    info = {"config": draft.config.to_dict(), "training": training, "valid": valid, "test": test}
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump({k: info[k] for k in ("training", "valid", "test")}, f, indent=1)
        f.write("\n")
    write_model_card(args.out, info)
    sizes = {f: os.path.getsize(os.path.join(args.out, f)) for f in sorted(os.listdir(args.out))}
    print("files", json.dumps(sizes), f"total {sum(sizes.values()) / 1e6:.2f} MB")
    print(f"done in {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    main()
