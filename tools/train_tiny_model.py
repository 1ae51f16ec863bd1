#!/usr/bin/env python3
"""Trains ferrum-tiny, the small Llama model that ships with ferrum (models/ferrum-tiny/).

Data: the King James Bible (public domain) from Debian's bible-kjv-text; Revelation is held
out for testing, the epistles of John and Jude for validation (see tools/tiny_data.py).
Steps: a byte-level BPE tokenizer (Hugging Face tokenizers), a Llama model trained in bf16
autocast with a fixed seed, saved as a Hugging Face folder (bf16 safetensors), then reloaded
in float32 to record the references that ferrum's tests compare against (tools/tiny_reference.py).

Needs PyTorch with a GPU, transformers and tokenizers (the H100 machine). See docs/ferrum-tiny.md:
    python3 tools/tiny_data.py --kjv .carry/tinydata/kjv.txt --extract   # where `bible` exists
    python3 tools/train_tiny_model.py --kjv .carry/tinydata/kjv.txt --out models/ferrum-tiny
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny_data  # noqa: E402
import tiny_export  # noqa: E402
import tiny_reference  # noqa: E402

# The pre-tokenizer regex of Qwen2 / Llama 3 (digits one by one), then GPT-2's byte mapping.
SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def train_tokenizer(docs, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=tiny_data.SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  min_frequency=2, show_progress=False)
    # Merges are learnt from the text alone: special-token markup is not language.
    plain = [d.replace(tiny_data.IM_START, "").replace(tiny_data.IM_END, "") for d in docs]
    tok.train_from_iterator(plain, trainer)
    return tok


def token_stream(tok, docs):
    """All documents, each followed by <|endoftext|>, as one list of ids."""
    eot = tok.token_to_id(tiny_data.END_OF_TEXT)
    out = []
    for enc in tok.encode_batch(docs):
        out.extend(enc.ids)
        out.append(eot)
    return out


def make_config(tok, args):
    return LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.max_positions, rms_norm_eps=1e-5, hidden_act="silu",
        tie_word_embeddings=True, attention_bias=False, mlp_bias=False, initializer_range=0.02,
        bos_token_id=tok.token_to_id(tiny_data.END_OF_TEXT),
        eos_token_id=tok.token_to_id(tiny_data.IM_END),
        pad_token_id=tok.token_to_id(tiny_data.END_OF_TEXT),
    )


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def mean_loss(model, ids, seq_len, device):
    """Mean next-token loss over non-overlapping windows (bf16 autocast: training-time view)."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, seq_len):
        chunk = torch.tensor(ids[start:start + seq_len + 1], device=device)
        if len(chunk) < 2:
            break
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(input_ids=chunk[None, :-1], use_cache=False).logits[0]
        total += F.cross_entropy(logits.float(), chunk[1:], reduction="sum").item()
        count += len(chunk) - 1
    model.train()
    return total / count


def train(model, train_ids, valid_ids, args, device):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), fused=device == "cuda")
    data = torch.tensor(train_ids, dtype=torch.long, device=device)
    offsets = torch.arange(args.seq_len + 1, device=device)
    gen = torch.Generator().manual_seed(args.seed)
    best = {"valid_loss": float("inf"), "step": -1, "state": None}
    log = []
    model.train()
    t0 = time.time()
    steps_done = 0
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        starts = torch.randint(0, len(train_ids) - args.seq_len - 1, (args.batch,), generator=gen)
        chunk = data[starts.to(device)[:, None] + offsets]
        x, y = chunk[:, :-1], chunk[:, 1:]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps_done = step + 1
        last = steps_done == args.steps or time.time() - t0 > args.max_train_seconds
        if steps_done % args.eval_every == 0 or last:
            valid = mean_loss(model, valid_ids, args.seq_len, device)
            elapsed = time.time() - t0
            entry = {"step": steps_done, "train_loss": round(loss.item(), 4),
                     "valid_loss": round(valid, 4), "seconds": round(elapsed, 1)}
            log.append(entry)
            print(f"step {steps_done:5d}  loss {entry['train_loss']:.4f}  valid {valid:.4f}"
                  f"  lr {lr_at(step, args):.2e}  {steps_done * args.batch * args.seq_len / elapsed:,.0f} tok/s"
                  f"  {elapsed:.0f}s", flush=True)
            if valid < best["valid_loss"]:
                best = {"valid_loss": valid, "step": steps_done,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        if last:
            break
    seconds = time.time() - t0
    if steps_done < args.steps:
        print(f"WARNING: stopped at the time cap after {steps_done} of {args.steps} steps", flush=True)
    model.load_state_dict(best["state"])
    return {"steps": steps_done, "steps_planned": args.steps, "seconds": round(seconds, 1),
            "best_step": best["step"], "best_valid_loss": round(best["valid_loss"], 4), "log": log}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kjv", required=True, help="KJV text as `bible -l0 gen1:1-rev22:21` prints it")
    ap.add_argument("--out", required=True, help="model folder to write")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--chats", type=int, default=12000, help="synthetic chat conversations")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--intermediate", type=int, default=704)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--max-positions", type=int, default=1024)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--max-train-seconds", type=float, default=120.0,
                    help="safety cap; a run that hits it is not the planned one (it says so)")
    ap.add_argument("--heldout-tokens", type=int, default=2048,
                    help="heldout.txt holds whole chapters of Revelation up to this many tokens")
    ap.add_argument("--smoke", action="store_true", help="a few steps, to check the whole pipeline")
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.eval_every, args.batch, args.chats, args.warmup = 30, 10, 8, 300, 5
    return args


def main():
    args = parse_args()
    t_start = time.time()
    import transformers
    import tokenizers
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print("versions", versions, "device", device,
          torch.cuda.get_device_name() if device == "cuda" else "", flush=True)

    chapters = tiny_data.parse_kjv(args.kjv)
    train_ch, valid_ch, test_ch = tiny_data.split_chapters(chapters)
    docs = tiny_data.build_documents(train_ch, args.chats, args.seed)
    tok = train_tokenizer(docs, args.vocab)
    train_ids = token_stream(tok, docs)
    valid_ids = token_stream(tok, [tiny_data.chapter_text(*c) for c in valid_ch])
    print(f"tokenizer vocab {tok.get_vocab_size()}; train tokens {len(train_ids):,}"
          f" (documents {len(docs)}), valid tokens {len(valid_ids):,}"
          f" [{time.time() - t_start:.0f}s]", flush=True)

    torch.manual_seed(args.seed)
    config = make_config(tok, args)
    model = LlamaForCausalLM(config).to(device)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"parameters {nparams:,}", flush=True)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    training = train(model, train_ids, valid_ids, args, device)
    training.update({"parameters": nparams, "train_tokens": len(train_ids), "valid_tokens": len(valid_ids),
                     "documents": len(docs), "chats": args.chats, "batch": args.batch,
                     "seq_len": args.seq_len, "lr": args.lr, "seed": args.seed, "versions": versions,
                     "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                     "command": "python3 tools/train_tiny_model.py " + " ".join(sys.argv[1:])})

    tiny_export.save_folder(model, tok, args.out)
    refs = tiny_reference.write_references(args.out, tok, test_ch, args.heldout_tokens, training)
    tiny_export.write_model_card(args.out, refs)
    sizes = {f: os.path.getsize(os.path.join(args.out, f)) for f in sorted(os.listdir(args.out))}
    print("files", json.dumps(sizes), f"total {sum(sizes.values()) / 1e6:.2f} MB")
    print(f"done in {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    main()
