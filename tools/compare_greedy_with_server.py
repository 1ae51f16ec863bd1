#!/usr/bin/env python3
"""Compares a ferrum server's greedy continuation with transformers' (issue 15's bf16 question).

  python3 tools/compare_greedy_with_server.py SAVE_DIR URL
SAVE_DIR: from tools/random_greedy_agreement.py --save (greedy.json and the tokenizer); URL: a
ferrum server of one of its checkpoints. Sends the same prompt ids (completions, temperature 0,
ignore_eos) and prints, for each dtype transformers ran, how many leading tokens ferrum's text
shares with transformers' greedy tokens (text is compared: the API returns text, not ids).
"""
import json
import sys
import urllib.request

from tokenizers import Tokenizer


def main():
    save, url = sys.argv[1], sys.argv[2].rstrip("/")
    ref = json.load(open(f"{save}/greedy.json"))
    tok = Tokenizer.from_file(f"{save}/bf16/tokenizer.json")
    n = len(ref["bf16"])
    body = {"model": "m", "prompt": ref["prompt"], "max_tokens": n, "temperature": 0, "ignore_eos": True,
            "skip_special_tokens": False}
    req = urllib.request.Request(f"{url}/v1/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
    text = json.load(urllib.request.urlopen(req, timeout=120))["choices"][0]["text"]
    out = {}
    for dtype in ("bf16", "f32"):
        ids = ref[dtype]
        same = 0
        while same < n and text.startswith(tok.decode(ids[: same + 1], skip_special_tokens=False)):
            same += 1
        out[f"leading_tokens_same_as_transformers_{dtype}"] = same
    out["tokens"] = n
    print(json.dumps(out))


if __name__ == "__main__":
    main()
