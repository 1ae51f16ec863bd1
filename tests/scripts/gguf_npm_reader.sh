# ferrum quantize's files read by an independent GGUF reader (@huggingface/gguf, npm): every
# key and tensor ferrum wrote is there, with the config's values, shapes and types (the K-quant
# mixes' per-tensor types computed here again from llama.cpp's rules), and every tensor's data
# inside the file.
set -euo pipefail
FERRUM=$(realpath "${1:?usage: bash $0 /path/to/ferrum}")
command -v node >/dev/null || { echo "node is required"; exit 1; }
[ -d tests/js/node_modules/@huggingface/gguf ] || { echo "run: (cd tests/js && npm install)"; exit 1; }
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
for MODEL in models/ferrum-tiny tests/fixtures/models/tiny-qwen3; do
  for TYPE in Q8_0 F16 Q4_0 Q4_K_M Q6_K; do
    OUT="$DIR/m.gguf"
    "$FERRUM" quantize "$MODEL" "$OUT" "$TYPE" 2>/dev/null
    node tests/js/gguf_read.mjs "$OUT" >"$DIR/read.json"
    python3 - "$DIR/read.json" "$MODEL" "$TYPE" "$(stat -c %s "$OUT")" <<'PY'
import json, sys
read, model, qtype, size = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = json.load(open(model + "/config.json"))
tok = json.load(open(model + "/tokenizer.json"))
m, tensors = read["meta"], {t["name"]: t for t in read["tensors"]}
arch = {"LlamaForCausalLM": "llama", "Qwen3ForCausalLM": "qwen3"}[cfg["architectures"][0]]
def want(key, value):
    if m.get(key) != value: sys.exit(f"FAIL {model} {qtype}: {key} = {m.get(key)!r}, expected {value!r}")
want("general.architecture", arch)
want(f"{arch}.block_count", cfg["num_hidden_layers"])
want(f"{arch}.embedding_length", cfg["hidden_size"])
want(f"{arch}.feed_forward_length", cfg["intermediate_size"])
want(f"{arch}.attention.head_count", cfg["num_attention_heads"])
want(f"{arch}.attention.head_count_kv", cfg["num_key_value_heads"])
want("tokenizer.ggml.model", "gpt2")
n_vocab = max(max([i for i in tok["model"]["vocab"].values()] + [a["id"] for a in tok["added_tokens"]]) + 1, cfg["vocab_size"])  # padded to the embedding rows
if m["tokenizer.ggml.tokens"]["length"] != n_vocab: sys.exit(f"FAIL {model}: {m['tokenizer.ggml.tokens']['length']} tokens, expected {n_vocab}")
if "tokenizer.chat_template" not in m: sys.exit(f"FAIL {model}: no chat template")
layers, H, I = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["intermediate_size"]
K_TYPES = (12, 13, 14)  # Q4_K, Q5_K, Q6_K: super-blocks of 256
def expected_type(name, shape, qtype, n_layers, tied):
    # llama-quantize: vectors stay F32; the output (or tied embeddings) gets Q6_K (Q8_0 when
    # rows are not whole blocks); Q4_K_M gives attn_v and ffn_down Q6_K in the first and last
    # eighth of the layers and every third between; rows that are not whole super-blocks fall
    # back to Q5_0 / Q5_1 / Q8_0, and to F16 when not whole blocks of 32.
    if len(shape) == 1: return 0
    t = {"Q8_0": 8, "F16": 1, "Q4_0": 2, "Q4_K_M": 12, "Q6_K": 14}[qtype]
    if t == 1: return 1
    block = lambda t: 256 if t in K_TYPES else 32
    more = lambda i, n: i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2
    layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
    if name == "output.weight" or (tied and name == "token_embd.weight"):
        t = 8 if shape[0] % block(t) else (8 if t == 8 else 14)
    elif qtype == "Q4_K_M" and ("attn_v." in name or "ffn_down" in name) and more(layer, n_layers):
        t = 14
    if shape[0] % block(t):
        t = {12: 6, 13: 7, 14: 8}.get(t, t)
        if shape[0] % 32: t = 1
    return t
D = cfg.get("head_dim", H // cfg["num_attention_heads"])
expect = {"token_embd.weight": [H, cfg["vocab_size"]], "output_norm.weight": [H]}
for l in range(layers):
    p = f"blk.{l}."
    expect.update({p + "attn_norm.weight": [H], p + "ffn_norm.weight": [H],
                   p + "attn_q.weight": [H, cfg["num_attention_heads"] * D], p + "attn_k.weight": [H, cfg["num_key_value_heads"] * D],
                   p + "attn_v.weight": [H, cfg["num_key_value_heads"] * D], p + "attn_output.weight": [cfg["num_attention_heads"] * D, H],
                   p + "ffn_gate.weight": [H, I], p + "ffn_up.weight": [H, I], p + "ffn_down.weight": [I, H]})
for name, shape in expect.items():
    t = tensors.get(name)
    if t is None: sys.exit(f"FAIL {model} {qtype}: no tensor {name}")
    if t["shape"] != shape: sys.exit(f"FAIL {model} {qtype}: {name} has shape {t['shape']}, expected {shape}")
    wanted = expected_type(name, shape, qtype, layers, "output.weight" not in tensors)
    if t["dtype"] != wanted: sys.exit(f"FAIL {model} {qtype}: {name} has type {t['dtype']}, expected {wanted}")
sizes = {0: lambda n: 4 * n, 1: lambda n: 2 * n, 8: lambda n: n // 32 * 34, 2: lambda n: n // 32 * 18,
         6: lambda n: n // 32 * 22, 7: lambda n: n // 32 * 24, 12: lambda n: n // 256 * 144,
         13: lambda n: n // 256 * 176, 14: lambda n: n // 256 * 210}
for t in read["tensors"]:
    n = 1
    for d in t["shape"]: n *= d
    end = read["data_offset"] + t["offset"] + sizes[t["dtype"]](n)
    if end > size: sys.exit(f"FAIL {model} {qtype}: {t['name']} ends at {end}, past the file's {size} bytes")
print(f"ok {model} {qtype}: {len(read['tensors'])} tensors, {len(m)} keys")
PY
  done
done
echo "PASS"
