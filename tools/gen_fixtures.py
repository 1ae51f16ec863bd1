#!/usr/bin/env python3
"""Writes the small random-weight checkpoints under tests/fixtures/models/ and transformers'
own float32 outputs for them (the golden references the C++ tests compare against).

Runs where torch + transformers + tokenizers are installed (the H100 machine; CPU is enough):
    python3 tools/gen_fixtures.py --text TRAINING_TEXT --mistral-tokenizer DIR --out OUTDIR

Each fixture covers a feature: GQA / MQA, tied / untied embeddings, q/k/v bias (Qwen2), q/k
RMSNorm (Qwen3), explicit head_dim, rope scaling (llama3, linear), weight dtypes f32/f16/bf16,
a byte-level BPE tokenizer (trained here) and a byte-fallback SentencePiece-style one
(Mistral's real tokenizer). Weights are scaled up (std 0.3, norm weights away from 1) so that
greedy choices have clear margins.
"""
import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, processors, trainers, Regex
from transformers import AutoModelForCausalLM, AutoTokenizer, AutoConfig

PROMPTS = [
    "The quick brown fox",
    "Once upon a time, in a land far away, there lived",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Numbers: 12345 and 3.14159; symbols & <tags> \"quoted\"",
]
NEW_TOKENS = 32
ARCHITECTURES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                 "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)

QWEN_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def train_bpe(text_path, out_dir, vocab_size=1024):
    """A byte-level BPE tokenizer shaped like Qwen's / Llama 3's (Split regex + ByteLevel)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train([text_path], trainer)
    bos = tok.token_to_id("<|bos|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", pair="<|bos|> $A <|bos|> $B", special_tokens=[("<|bos|>", bos)])
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|bos|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|eos|>",
        "model_max_length": 4096,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHATML,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return tok.get_vocab_size(), bos, tok.token_to_id("<|im_end|>")


def scale_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name or "_norm" in name:
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def save_checkpoint(model, out_dir, dtype):
    sd = {}
    for k, v in model.state_dict().items():
        if model.config.tie_word_embeddings and k == "lm_head.weight":
            continue
        sd[k] = v.detach().to(dtype).contiguous()
    save_file(sd, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    model.config.torch_dtype = dtype
    model.config.save_pretrained(out_dir)
    gen = {"bos_token_id": model.config.bos_token_id, "eos_token_id": model.config.eos_token_id,
           "do_sample": False}
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)


def references(out_dir):
    """transformers' float32 forward on the saved weights: greedy ids, logits at chosen rows."""
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForCausalLM.from_pretrained(out_dir, torch_dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    refs = {"prompts": [], "new_tokens": NEW_TOKENS}
    tensors = {}
    for i, prompt in enumerate(PROMPTS):
        ids = tok(prompt)["input_ids"]
        seq = list(ids)
        margins = []
        with torch.no_grad():
            for _ in range(NEW_TOKENS):  # greedy, no EOS stop: every fixture yields 32 tokens
                logits = model(torch.tensor([seq])).logits[0, -1]
                top2 = torch.topk(logits, 2).values
                margins.append(float(top2[0] - top2[1]))
                seq.append(int(torch.argmax(logits)))
            full = model(torch.tensor([seq])).logits[0]
        n = len(ids)
        # Every prompt row where the vocabulary is small; the last two where it is large (size).
        prompt_rows = list(range(n)) if model.config.vocab_size <= 4096 else [n - 2, n - 1]
        rows = prompt_rows + [n - 1 + s for s in (8, 16, 24, NEW_TOKENS - 1)]
        tensors[f"logits_{i}"] = full[rows].contiguous()
        refs["prompts"].append({
            "text": prompt,
            "prompt_ids": ids,
            "prompt_ids_no_special": tok(prompt, add_special_tokens=False)["input_ids"],
            "greedy_ids": seq[n:],
            "greedy_text": tok.decode(seq[n:]),
            "logit_rows": rows,
            "min_greedy_margin": min(margins),
        })
    save_file(tensors, os.path.join(out_dir, "reference.safetensors"))
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(refs, f, indent=1, ensure_ascii=False)
    return refs


def random_model(name, arch_cfg, architectures, tok_dir, out_root, seed):
    """A fixture folder with the tokenizer, and a float32 model of arch_cfg with scaled random weights."""
    out_dir = os.path.join(out_root, name)
    os.makedirs(out_dir, exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok_dir, f), os.path.join(out_dir, f))
    config = AutoConfig.for_model(**arch_cfg)
    config.architectures = [architectures[arch_cfg["model_type"]]]
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32,
                                             attn_implementation="eager")
    scale_weights(model, seed)
    return out_dir, model


def make(name, arch_cfg, dtype, tok_dir, out_root, seed):
    out_dir, model = random_model(name, arch_cfg, ARCHITECTURES, tok_dir, out_root, seed)
    save_checkpoint(model, out_dir, dtype)
    refs = references(out_dir)
    print(name, "margins", [round(p["min_greedy_margin"], 4) for p in refs["prompts"]],
          "bytes", sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", required=True)
    ap.add_argument("--mistral-tokenizer", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(8)
    bpe_dir = os.path.join(args.out, "_bpe")
    vocab, bos, eos = train_bpe(args.text, bpe_dir)
    common = dict(vocab_size=vocab, bos_token_id=bos, eos_token_id=eos, hidden_act="silu",
                  max_position_embeddings=256, initializer_range=0.3)

    make("tiny-llama", dict(model_type="llama", hidden_size=64, intermediate_size=128,
                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=False,
                            rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                          "original_max_position_embeddings": 64},
                            **common), torch.bfloat16, bpe_dir, args.out, 1)
    make("tiny-llama-mqa", dict(model_type="llama", hidden_size=48, intermediate_size=96,
                                num_hidden_layers=2, num_attention_heads=3, num_key_value_heads=1,
                                head_dim=32, rms_norm_eps=1e-6, rope_theta=10000.0,
                                tie_word_embeddings=True,
                                rope_scaling={"rope_type": "linear", "factor": 2.0},
                                **common), torch.float16, bpe_dir, args.out, 2)
    make("tiny-qwen2", dict(model_type="qwen2", hidden_size=64, intermediate_size=160,
                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                            use_sliding_window=False, **common), torch.float32, bpe_dir, args.out, 3)
    make("tiny-qwen3", dict(model_type="qwen3", hidden_size=64, intermediate_size=128,
                            num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                            head_dim=32, rms_norm_eps=1e-6, rope_theta=1000000.0,
                            tie_word_embeddings=True, attention_bias=False,
                            use_sliding_window=False, **common), torch.bfloat16, bpe_dir, args.out, 4)

    # Mistral's real tokenizer.json, used as the file says (PreTrainedTokenizerFast), with
    # Mistral's [INST] chat template.
    mistral_dir = os.path.join(args.out, "_mistral_tok")
    os.makedirs(mistral_dir, exist_ok=True)
    shutil.copy(os.path.join(args.mistral_tokenizer, "tokenizer.json"), mistral_dir)
    with open(os.path.join(args.mistral_tokenizer, "tokenizer_config.json")) as f:
        mcfg = json.load(f)
    mcfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    mcfg["model_max_length"] = 32768
    mcfg["chat_template"] = MISTRAL_TEMPLATE
    with open(os.path.join(mistral_dir, "tokenizer_config.json"), "w") as f:
        json.dump(mcfg, f, indent=2)
    mtok = Tokenizer.from_file(os.path.join(args.mistral_tokenizer, "tokenizer.json"))
    mcommon = dict(common, vocab_size=mtok.get_vocab_size(), bos_token_id=1, eos_token_id=2)
    make("tiny-mistral", dict(model_type="mistral", hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                              rms_norm_eps=1e-5, rope_theta=1000000.0, tie_word_embeddings=False,
                              sliding_window=None, **mcommon),
         torch.bfloat16, mistral_dir, args.out, 5)
    shutil.rmtree(bpe_dir)
    shutil.rmtree(mistral_dir)


if __name__ == "__main__":
    main()
