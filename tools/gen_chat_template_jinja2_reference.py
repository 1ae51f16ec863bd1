#!/usr/bin/env python3
"""Renders tests/fixtures/chat_templates (templates x conversations, and snippets.json) with
Python's jinja2 configured exactly as transformers' apply_chat_template configures it, and
writes jinja2_reference.json beside them. A development-time tool: the C++ tests read the
stored JSON (and run @huggingface/jinja live); nothing here runs in CI.

Usage: python3 tools/gen_chat_template_jinja2_reference.py
"""
import datetime
import json
import os

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "chat_templates")


def make_env(fixed_date):
    # transformers/utils/chat_template_utils.py: _compile_jinja_template
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return fixed_date.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, context):
    try:
        return {"text": env.from_string(source).render(**context)}
    except Exception as e:  # the reference records the failure and its message
        return {"error": str(e)}


def main():
    manifest = json.load(open(os.path.join(HERE, "manifest.json")))
    convs = json.load(open(os.path.join(HERE, "conversations.json")))
    snippets = json.load(open(os.path.join(HERE, "snippets.json")))
    fixed = datetime.datetime.strptime(manifest["fixed_date"], "%Y-%m-%d").replace(hour=12)
    env = make_env(fixed)
    out = {}
    for t in manifest["templates"]:
        source = open(os.path.join(HERE, t["name"] + ".jinja"), encoding="utf-8").read()
        out[t["name"]] = {}
        for c in convs["cases"]:
            ctx = {"messages": c["messages"], "tools": convs["tools"] if c.get("use_tools") else None,
                   "documents": None, "add_generation_prompt": c["add_generation_prompt"]}
            for key in ("bos_token", "eos_token"):
                if t.get(key) is not None:
                    ctx[key] = t[key]
            ctx.update(c.get("kwargs", {}))
            out[t["name"]][c["name"]] = render(env, source, ctx)
    out["__snippets__"] = {s["name"]: render(env, s["template"], s["context"]) for s in snippets}
    with open(os.path.join(HERE, "jinja2_reference.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "jinja2 " + jinja2.__version__ + " with transformers' chat template settings",
                   "results": out}, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
