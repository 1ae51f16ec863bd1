#!/usr/bin/env python3
"""Joins two long-run fuzz states that started from the same one (scripts/fuzz-long.sh on two
machines at once, e.g. the slowest target here while a GPU machine's idle cores take the others).

  scripts/fuzz-merge-states.py BASE.tar.xz A.tar.xz B.tar.xz OUT.tar.xz
Executions, worker-seconds, calls and findings are BASE's plus what A and B each added; coverage
and features the larger of A's and B's (libFuzzer's numbers of a merged corpus: a lower bound
for the union); a target's corpus and findings are those of the side that fuzzed it, or the
union of files (named by content hash) where both did; calls.tsv
BASE's lines, then A's and B's new ones.
"""
import os
import shutil
import subprocess
import sys
import tempfile


def unpack(path, into):
    os.makedirs(into)
    subprocess.run(["tar", "xJf", path, "-C", into], check=True)
    return into


def totals(state):
    with open(os.path.join(state, "totals.tsv")) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    return rows[0], {r[0]: r for r in rows[1:]}


def lines(state, name):
    p = os.path.join(state, name)
    return open(p).read().splitlines() if os.path.exists(p) else []


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: fuzz-merge-states.py BASE.tar.xz A.tar.xz B.tar.xz OUT.tar.xz")
    base_path, a_path, b_path, out_path = sys.argv[1:]
    tmp = tempfile.mkdtemp()
    try:
        base, a, b = (unpack(p, os.path.join(tmp, n)) for p, n in ((base_path, "base"), (a_path, "a"), (b_path, "b")))
        header, t0 = totals(base)
        _, ta = totals(a)
        _, tb = totals(b)
        out = os.path.join(tmp, "out")
        shutil.copytree(a, out)
        ex = header.index("executions")
        ran = lambda t, rows: t in rows and (t not in t0 or rows[t][ex] != t0[t][ex])
        for target in tb:
            if not ran(target, tb):
                continue  # B left it as BASE had it: A's corpus is the newer one
            if not ran(target, ta):  # only B fuzzed it: B's corpus, not a union with BASE's
                shutil.rmtree(os.path.join(out, "corpus", target), ignore_errors=True)
            for sub in ("corpus", "artifacts"):  # the union of B's files into A's
                for root, _, files in os.walk(os.path.join(b, sub, target)):
                    dest = os.path.join(out, os.path.relpath(root, b))
                    os.makedirs(dest, exist_ok=True)
                    for f in files:
                        if not os.path.exists(os.path.join(dest, f)):
                            shutil.copy2(os.path.join(root, f), dest)
        col = {name: i for i, name in enumerate(header)}
        merged = []
        for target in sorted(set(t0) | set(ta) | set(tb)):
            zero = [target] + ["0"] * (len(header) - 1)
            r0, ra, rb = t0.get(target, zero), ta.get(target, zero), tb.get(target, zero)
            row = list(ra)
            for k in ("executions", "worker_seconds", "calls", "findings"):
                i = col[k]
                row[i] = str(int(ra[i]) + int(rb[i]) - int(r0[i]))
            for k in ("cov", "ft"):
                row[col[k]] = str(max(int(ra[col[k]]), int(rb[col[k]])))
            corpus = os.path.join(out, "corpus", target)
            row[col["corpus"]] = str(len(os.listdir(corpus)) if os.path.isdir(corpus) else 0)
            merged.append(row)
        with open(os.path.join(out, "totals.tsv"), "w") as f:
            f.write("\t".join(header) + "\n")
            for row in merged:
                f.write("\t".join(row) + "\n")
        old = lines(base, "calls.tsv")
        calls = old + [l for l in lines(a, "calls.tsv") if l not in old] + [l for l in lines(b, "calls.tsv") if l not in old]
        with open(os.path.join(out, "calls.tsv"), "w") as f:
            f.write("\n".join(calls) + "\n")
        subprocess.run(f"tar cf - -C {out} . | xz -6 > {out_path}", shell=True, check=True)
        for row in merged:
            print("\t".join(row[:3]))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
