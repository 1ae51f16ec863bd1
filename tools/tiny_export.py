"""Writes the ferrum-tiny Hugging Face folder (config, bf16 safetensors, tokenizer files,
generation config) and its model card. Used by tools/train_tiny_model.py."""
import json
import os

import torch
from safetensors.torch import save_file

import tiny_data


def save_folder(model, tok, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    config = model.config
    # Tied embeddings: lm_head.weight is embed_tokens.weight, stored once (as HF does).
    state = {k: v.detach().to(torch.bfloat16).contiguous().cpu()
             for k, v in model.state_dict().items() if not (config.tie_word_embeddings and k == "lm_head.weight")}
    save_file(state, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})

    config.save_pretrained(out_dir)
    path = os.path.join(out_dir, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    # Spell the fields both ways (transformers 4 and 5), so that older readers find them too.
    cfg["torch_dtype"] = "bfloat16"
    cfg["dtype"] = "bfloat16"
    if "rope_theta" not in cfg:
        cfg["rope_theta"] = float((cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    cfg["architectures"] = ["LlamaForCausalLM"]
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")

    tok.save(os.path.join(out_dir, "tokenizer.json"))
    im_end, eot = tok.token_to_id(tiny_data.IM_END), tok.token_to_id(tiny_data.END_OF_TEXT)
    tok_cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": tiny_data.IM_END,
        "pad_token": tiny_data.END_OF_TEXT,
        "add_bos_token": False,
        "add_eos_token": False,
        "model_max_length": config.max_position_embeddings,
        "clean_up_tokenization_spaces": False,
        "chat_template": tiny_data.CHAT_TEMPLATE,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tok_cfg, f, indent=2)
        f.write("\n")
    gen = {"bos_token_id": eot, "eos_token_id": [im_end, eot], "pad_token_id": eot,
           "do_sample": True, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 128}
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")


def write_model_card(out_dir, refs):
    t = refs["training"]
    held = refs["perplexity"]
    full = refs["test_perplexity"]
    size_mb = os.path.getsize(os.path.join(out_dir, "model.safetensors")) / 1e6
    rows = "\n".join(f"| {r['ctx']} | {r['ppl']:.3f} | {r['num_windows']} | {r['num_scored']} |" for r in full)
    held_rows = "\n".join(f"| {r['ctx']} | {r['ppl']:.4f} | {r['num_windows']} | {r['num_scored']} |"
                          for r in held["results"])
    samples = "\n\n".join(
        f"Prompt: `{json.dumps(p['text'])[1:-1]}`\n\nGreedy: `{json.dumps(p['greedy_text'])[1:-1]}`"
        for p in refs["greedy"]["prompts"])
    text = f"""# ferrum-tiny

A small Llama-architecture language model that ships with ferrum, so that `ferrum run` and
`ferrum serve` work offline out of the box, and so that every backend and weight format can be
checked end to end by perplexity on held-out text. It is a toy: it writes King James English,
answers questions with (often made-up) verses, and knows nothing else.

## Data and license

- Text: the King James Version of the Bible (1611), public domain, as Debian's package
  `bible-kjv-text` ships it (`bible -l0 gen1:1-rev22:21`, package `bible-kjv`).
- Training: every book but the ones below, as plain chapters, plus {t['chats']:,} synthetic
  ChatML conversations built from those verses (a question made from a verse's words or
  reference, answered with the verse; see `tools/tiny_data.py`).
- Validation (model selection): 1, 2, 3 John and Jude. Test (held out): Revelation.
- The weights, tokenizer and these files are released into the public domain (CC0), as the text is.

## Model

- LlamaForCausalLM: hidden {refs['config']['hidden_size']}, {refs['config']['num_hidden_layers']} layers,
  {refs['config']['num_attention_heads']} heads, {refs['config']['num_key_value_heads']} KV heads (GQA),
  MLP {refs['config']['intermediate_size']}, RoPE theta {refs['config']['rope_theta']:g},
  context {refs['config']['max_position_embeddings']} (trained on {t['seq_len']}), tied embeddings,
  {t['parameters']:,} parameters, bf16 weights ({size_mb:.1f} MB).
- Tokenizer: byte-level BPE, {refs['config']['vocab_size']} tokens, Qwen2-style pre-tokenizer
  regex; special tokens `<|endoftext|>` (document separator), `<|im_start|>`, `<|im_end|>`;
  no BOS; ChatML chat template; generation stops at `<|im_end|>` or `<|endoftext|>`.

## Training

{t['steps']} steps (of {t['steps_planned']} planned) of {t['batch']} x {t['seq_len']} tokens, AdamW, peak lr {t['lr']},
cosine schedule, bf16 autocast, seed {t['seed']}; {t['train_tokens']:,} training tokens; {t['seconds']:.0f} s on
one {t['device']} ({', '.join(f'{k} {v}' for k, v in t['versions'].items())}). Kept the checkpoint with the
best validation loss: step {t['best_step']}, loss {t['best_valid_loss']}.

## Held-out perplexity (Revelation, float32 on the bf16 weights)

Non-overlapping windows of `ctx` tokens; as llama.cpp's perplexity tool, each window is scored on
its second half only (the predictions of tokens ctx/2+1 .. ctx-1, so every scored token has at
least ctx/2 tokens of context).

| ctx | PPL | windows | scored tokens |
| --- | --- | --- | --- |
{rows}

`heldout.txt` (the first chapters of Revelation, {len(held['token_ids'])} tokens) is what ferrum's tests use:

| ctx | PPL | windows | scored tokens |
| --- | --- | --- | --- |
{held_rows}

`reference.json` holds these numbers, the token ids, and PyTorch's greedy continuations
(32 tokens) of four prompts, recorded by `tools/train_tiny_model.py` with transformers in
float32 on the saved weights:

{samples}

Reproduce: see docs/ferrum-tiny.md.
"""
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write(text)
