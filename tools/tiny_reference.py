"""Records what ferrum's tests compare against: transformers' float32 forward on the saved
bf16 weights (CPU, so no TF32 and no GPU kernel choices), reloaded from the written folder.

- perplexity of heldout.txt with non-overlapping windows of ctx tokens, each scored on its
  second half (llama.cpp's perplexity tool does the same); and of all of Revelation;
- greedy continuations (no EOS stop) of a few prompts, with the top-2 logit margin per step.
Used by tools/train_tiny_model.py; can also be run alone on a folder:
    python3 tools/tiny_reference.py --model models/ferrum-tiny --kjv .carry/tinydata/kjv.txt
"""
import argparse
import json
import math
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny_data  # noqa: E402

CONTEXTS = (256, 512)
NEW_TOKENS = 32
TEXT_PROMPTS = ["In the beginning God created", "And the LORD spake unto Moses, saying,"]
CHAT_PROMPTS = [
    [{"role": "user", "content": "Tell me about love."}],
    [{"role": "system", "content": "You are a helpful assistant."},
     {"role": "user", "content": "Who was David?"}],
]


def load_fp32(model_dir):
    from transformers import LlamaForCausalLM
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    except TypeError:  # transformers before 4.56 names it torch_dtype
        model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    # The weights must be exactly the saved bf16 values, with lm_head tied to the embedding.
    saved = load_file(os.path.join(model_dir, "model.safetensors"))
    params = dict(model.named_parameters())
    for name, tensor in saved.items():
        if name not in params or not torch.equal(params[name].detach(), tensor.float()):
            raise SystemExit(f"reloaded weight {name} differs from the saved one")
    if not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight):
        raise SystemExit("lm_head is not tied to embed_tokens after reload")
    return model


@torch.no_grad()
def perplexity(model, ids, ctx):
    """exp(mean NLL) over non-overlapping windows of ctx tokens, scoring in each window the
    predictions of tokens ctx/2+1 .. ctx-1 (from the logits at rows ctx/2 .. ctx-2)."""
    first = ctx // 2
    num_windows = len(ids) // ctx
    if num_windows < 1:
        raise ValueError(f"{len(ids)} tokens is less than one window of {ctx}")
    total, count, window_nll = 0.0, 0, []
    for w in range(num_windows):
        window = torch.tensor([ids[w * ctx:(w + 1) * ctx]])
        logits = model(input_ids=window, use_cache=False).logits[0].double()
        logp = torch.log_softmax(logits[first:ctx - 1], dim=-1)
        nll = -logp.gather(1, window[0, first + 1:ctx, None]).squeeze(1)
        window_nll.append(float(nll.mean()))
        total += float(nll.sum())
        count += nll.numel()
    return {"ctx": ctx, "ppl": math.exp(total / count), "mean_nll": total / count,
            "num_windows": num_windows, "num_scored": count, "window_mean_nll": window_nll}


@torch.no_grad()
def greedy(model, prompt_ids, new_tokens):
    seq, margins = list(prompt_ids), []
    for _ in range(new_tokens):
        logits = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1]
        top2 = torch.topk(logits, 2).values
        margins.append(float(top2[0] - top2[1]))
        seq.append(int(torch.argmax(logits)))
    return seq[len(prompt_ids):], margins


def heldout_text(tok, test_chapters, target_tokens):
    """Whole chapters of the test books, from the first, until target_tokens is reached."""
    parts = []
    for ch in test_chapters:
        parts.append(tiny_data.chapter_text(*ch))
        if len(tok.encode("\n".join(parts)).ids) >= target_tokens:
            break
    return "\n".join(parts)


def check_hf_tokenizer(model_dir, text, ids):
    """The folder must load as a normal HF tokenizer and agree with `tokenizers`."""
    try:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(model_dir)
        same = hf(text)["input_ids"] == ids
        rendered = hf.apply_chat_template(CHAT_PROMPTS[1], tokenize=False, add_generation_prompt=True)
        expected = tiny_data.render_chat(CHAT_PROMPTS[1]) + tiny_data.IM_START + "assistant\n"
        ok = same and rendered == expected
        print("AutoTokenizer check:", "ok" if ok else f"MISMATCH ids={same} template={rendered!r}")
        return ok
    except Exception as e:  # report, don't lose the run
        print("AutoTokenizer check failed:", repr(e))
        return False


def write_references(model_dir, tok, test_chapters, heldout_tokens, training):
    # Few threads: several of these runs may share a machine, and oversubscribed BLAS crawls.
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    model = load_fp32(model_dir)
    text = heldout_text(tok, test_chapters, heldout_tokens)
    with open(os.path.join(model_dir, "heldout.txt"), "w") as f:
        f.write(text)
    ids = tok.encode(text).ids
    if tok.decode(ids) != text:
        raise SystemExit("tokenizer does not round-trip heldout.txt")
    held = [perplexity(model, ids, ctx) for ctx in CONTEXTS]
    full_ids = tok.encode("\n".join(tiny_data.chapter_text(*c) for c in test_chapters)).ids
    full = []
    for ctx in CONTEXTS:
        r = perplexity(model, full_ids, ctx)
        full.append({k: r[k] for k in ("ctx", "ppl", "mean_nll", "num_windows", "num_scored")})
    for r in held + full:
        print(f"perplexity ctx {r['ctx']}: {r['ppl']:.4f} over {r['num_scored']} tokens")

    prompts = [(p, p) for p in TEXT_PROMPTS]
    prompts += [(tiny_data.render_chat(m) + tiny_data.IM_START + "assistant\n", m) for m in CHAT_PROMPTS]
    greedy_refs = []
    for text_prompt, source in prompts:
        prompt_ids = tok.encode(text_prompt).ids
        out, margins = greedy(model, prompt_ids, NEW_TOKENS)
        entry = {"text": text_prompt, "prompt_ids": prompt_ids, "greedy_ids": out,
                 "greedy_text": tok.decode(out, skip_special_tokens=False),
                 "min_margin": min(margins), "margins": margins}
        if isinstance(source, list):
            entry["messages"] = source
        greedy_refs.append(entry)
        print(f"greedy {text_prompt!r} -> {entry['greedy_text']!r} (min margin {min(margins):.4f})")

    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    refs = {
        "about": "Recorded by tools/train_tiny_model.py: transformers float32 (CPU) on the saved "
                 "bf16 weights. Perplexity: non-overlapping windows of ctx tokens of heldout.txt "
                 "(tokenized with add_special_tokens, which adds nothing here), each scored on the "
                 "predictions of tokens ctx/2+1..ctx-1, as llama.cpp's perplexity tool.",
        "perplexity": {"file": "heldout.txt", "token_ids": ids, "results": held},
        "test_perplexity": full,
        "greedy": {"new_tokens": NEW_TOKENS, "stop_at_eos": False, "prompts": greedy_refs},
        "hf_tokenizer_check": check_hf_tokenizer(model_dir, text, ids),
        "config": {k: cfg.get(k) for k in ("vocab_size", "hidden_size", "intermediate_size",
                                           "num_hidden_layers", "num_attention_heads",
                                           "num_key_value_heads", "max_position_embeddings",
                                           "rope_theta")},
        "training": training,
    }
    with open(os.path.join(model_dir, "reference.json"), "w") as f:
        json.dump(refs, f, indent=1)
        f.write("\n")
    return refs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--kjv", required=True)
    ap.add_argument("--heldout-tokens", type=int, default=2048)
    args = ap.parse_args()
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    _, _, test = tiny_data.split_chapters(tiny_data.parse_kjv(args.kjv))
    old = json.load(open(os.path.join(args.model, "reference.json")))
    write_references(args.model, tok, test, args.heldout_tokens, old.get("training", {}))


if __name__ == "__main__":
    main()
