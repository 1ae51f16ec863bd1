"""Differential fuzzing of ferrum's Jinja interpreter against Python jinja2 (transformers' settings).

Development-time only. Generates random templates, renders them with jinja2, and writes
/tmp/jinja_fuzz_cases.json; then build and run the C++ side:
  g++ -std=c++20 -O1 -Isrc tools/fuzz_chat_jinja_runner.cpp build/libferrum_chat.a build/libferrum_core.a -lfmt \\
      -o /tmp/jinja_fuzz && /tmp/jinja_fuzz /tmp/jinja_fuzz_cases.json
Usage: python3 tools/fuzz_chat_jinja.py SEED COUNT
Known, accepted differences: tuples print as lists, and jinja2's lazy generators (select, map,
unique ...) become lists in ferrum (printing or len() of a generator differs).
"""
import copy
import json, random, sys
sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.abspath(__file__)))
from gen_chat_template_jinja2_reference import make_env, render
import datetime
random.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
env = make_env(datetime.datetime(2024, 9, 5, 12))
atoms = ["1", "2", "0", "-3", "2.5", "0.1", "'a'", "'Hello World'", "''", "' x '", "none", "true", "false",
         "[1, 2, 3]", "['b', 'a']", "[]", "{'k': 1, 'j': 'v'}", "{}", "s", "n", "l", "d", "u", "f", "e", "msgs",
         "(1, 2)", "'日本'", "'a,b,,c'", "'  pad  '", "d.k", "l[0]", "l[-1]", "s[1:]", "msgs[0].role", "msgs[-1]['content']"]
binops = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">", "<=", ">=", "and", "or", "in", "not in"]
filters = ["length", "first", "last", "trim", "upper", "lower", "title", "capitalize", "string", "list", "tojson",
           "join(',')", "default('D')", "reverse", "sort", "unique", "int", "float", "abs", "sum", "min", "max",
           "items", "dictsort", "map('string')", "select", "reject", "selectattr('role')", "map(attribute='role')",
           "replace('a', 'X')", "round", "count", "wordcount", "indent(2)", "center(9)", "batch(2)", "e"]
tests = ["defined", "undefined", "none", "string", "number", "mapping", "sequence", "iterable", "integer", "float",
         "true", "false", "boolean", "even", "odd", "lower", "upper", "equalto 1", "callable"]
methods = [".upper()", ".lower()", ".strip()", ".split(',')", ".startswith('a')", ".endswith('c')",
           ".replace('a', 'b')", ".title()", ".split()", ".lstrip()", ".rstrip('x')", ".find('b')", ".count('a')",
           ".get('k')", ".items()", ".keys()", ".values()", ".get('zz', 7)"]

def expr(d=0):
    r = random.random()
    if d > 3 or r < 0.3:
        return random.choice(atoms)
    if r < 0.5:
        return f"({expr(d+1)} {random.choice(binops)} {expr(d+1)})"
    if r < 0.65:
        return f"({expr(d+1)} | {random.choice(filters)})"
    if r < 0.75:
        return f"({expr(d+1)} is {'not ' if random.random() < 0.3 else ''}{random.choice(tests)})"
    if r < 0.85:
        return f"{random.choice(['s', 'd', 'l', 'u', 'n', 'msgs[0]'])}{random.choice(methods)}"
    if r < 0.92:
        return f"({expr(d+1)} if {expr(d+1)} else {expr(d+1)})"
    return f"(not {expr(d+1)})"

def stmt():
    r = random.random()
    if r < 0.5:
        return "{{ " + expr() + " }}"
    if r < 0.7:
        return "{% for x in " + expr() + " %}[{{ x }}{{ loop.index }}]{% else %}E{% endfor %}"
    if r < 0.85:
        return "{% if " + expr() + " %}T{% elif " + expr() + " %}M{% else %}F{% endif %}"
    return "{% set v = " + expr() + " %}{{ v }}"

ctx = {"s": "a,b,c", "n": None, "l": [3, 1, 2], "d": {"k": 1, "j": "v"}, "f": 1.5, "e": "",
       "msgs": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None}]}
cases = []
for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 2000):
    t = "".join(stmt() for _ in range(random.randint(1, 3)))

    cases.append({"name": f"f{i}", "template": t, "context": ctx, "py": render(env, t, copy.deepcopy(ctx))})
json.dump(cases, open("/tmp/jinja_fuzz_cases.json", "w"), ensure_ascii=False)
