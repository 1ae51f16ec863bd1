#!/usr/bin/env python3
"""Builds the seed corpora of the fuzz targets under OUT/<target>/ from the repository's
fixtures (configs, templates, schemas, tokenizer text) plus small handmade inputs: a
safetensors image, a GGUF image, request bodies, HTTP requests, SSE streams. Small on purpose:
libFuzzer grows the corpus itself. Usage: make_seeds.py OUT"""
import glob, json, os, struct, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors_seeds(out):
    header = {"__metadata__": {"format": "pt"},
              "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [8, 12]}}
    h = json.dumps(header).encode()
    put(out, "fuzz_safetensors", "two_tensors", struct.pack("<Q", len(h)) + h + bytes(12))
    # The real header of a fixture model, with its data cut off (a truncated file).
    with open(os.path.join(ROOT, "tests/fixtures/models/tiny-qwen3/model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        put(out, "fuzz_safetensors", "tiny_qwen3_header", struct.pack("<Q", n) + f.read(n) + bytes(64))


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_seeds(out):
    kvs = [("general.architecture", 8, gguf_string("llama")),
           ("general.alignment", 4, struct.pack("<I", 32)),
           ("llama.context_length", 4, struct.pack("<I", 128)),
           ("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)),
           ("tokenizer.ggml.add_bos_token", 7, b"\x01"),
           ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + b"".join(gguf_string(t) for t in ["a", "b", "ab"])),
           ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 2) + struct.pack("<ff", 0.5, -1.0)),
           ("general.size", 10, struct.pack("<Q", 7))]
    body = b"".join(gguf_string(k) + struct.pack("<I", t) + v for k, t, v in kvs)
    # tensors: F32 [4] at 0, Q8_0 [32] (one block of 34 bytes) at 32
    tensors = (gguf_string("t.f32") + struct.pack("<I", 1) + struct.pack("<Q", 4) + struct.pack("<I", 0) + struct.pack("<Q", 0) +
               gguf_string("t.q8") + struct.pack("<I", 1) + struct.pack("<Q", 32) + struct.pack("<I", 8) + struct.pack("<Q", 32))
    head = b"GGUF" + struct.pack("<IQQ", 3, 2, len(kvs)) + body + tensors
    head += bytes((-len(head)) % 32)
    put(out, "fuzz_gguf", "llama_like", head + bytes(32 + 34))


def text_seeds(out):
    for p in glob.glob(os.path.join(ROOT, "tests/fixtures/models/*/config.json")) + \
             glob.glob(os.path.join(ROOT, "bench/configs/*/config.json")) + [os.path.join(ROOT, "models/ferrum-tiny/config.json")]:
        put(out, "fuzz_model_config", os.path.basename(os.path.dirname(p)), open(p, "rb").read())
    for p in glob.glob(os.path.join(ROOT, "tests/fixtures/chat_templates/*.jinja")):
        put(out, "fuzz_jinja", os.path.basename(p), open(p, "rb").read())
    schemas = json.load(open(os.path.join(ROOT, "tests/fixtures/structured/schemas.json")))["schemas"]
    for name, s in schemas.items():
        put(out, "fuzz_json_schema", name, json.dumps(s))
    text = open(os.path.join(ROOT, "models/ferrum-tiny/heldout.txt"), "rb").read()
    for i in range(0, 2048, 256):
        put(out, "fuzz_tokenizer_encode", f"heldout_{i}", b"\x00" + text[i:i + 256])
        put(out, "fuzz_tokenizer_encode", f"heldout_llama_{i}", b"\x01" + text[i:i + 256])


def committed_seeds(out):
    """fuzz/seeds/<target>/*: handwritten inputs, kept in the repository."""
    for p in glob.glob(os.path.join(ROOT, "fuzz/seeds/*/*")):
        put(out, os.path.basename(os.path.dirname(p)), os.path.basename(p), open(p, "rb").read())


if __name__ == "__main__":
    out = sys.argv[1]
    safetensors_seeds(out)
    gguf_seeds(out)
    text_seeds(out)
    committed_seeds(out)
