#!/bin/bash
# bench/spec_ab_rounds.sh ROUNDS: the CPU A/B of docs/bench/speculative.md, interleaved: each
# round runs every setting once (bench/spec_ab.sh: ferrum-tiny, c=1, 12 requests of 256 tokens),
# so that a shared machine's load falls on all of them alike; then prints each setting's median
# output tok/s and output tokens per second of the server's CPU time, their ranges, and their
# ratios to off on the same prompts. Run from the repo root.
set -e
rounds=${1:-3}
P=bench/spec_prompts
runs=(
  "off_rep            $P/repetitive.txt {\"temperature\":0}"
  "ngram3_rep         $P/repetitive.txt {\"temperature\":0}          --spec-ngram --spec-tokens 3"
  "ngram3always_rep   $P/repetitive.txt {\"temperature\":0}          --spec-ngram --spec-tokens 3 --spec-ngram-always"
  "off_plain          $P/plain.txt      {\"temperature\":1,\"seed\":1}"
  "ngram3_plain       $P/plain.txt      {\"temperature\":1,\"seed\":1} --spec-ngram --spec-tokens 3"
  "ngram3always_plain $P/plain.txt      {\"temperature\":1,\"seed\":1} --spec-ngram --spec-tokens 3 --spec-ngram-always"
)
# SET=draft: the trained draft (models/ferrum-tiny-draft, K = 3) against off instead, on plain
# prompts, greedy and at temperature 1.
if [ "${SET:-}" = draft ]; then
  runs=(
    "off_greedy         $P/plain.txt      {\"temperature\":0}"
    "draft3_greedy      $P/plain.txt      {\"temperature\":0}          --spec-draft models/ferrum-tiny-draft --spec-tokens 3"
    "off_plain          $P/plain.txt      {\"temperature\":1,\"seed\":1}"
    "draft3_plain       $P/plain.txt      {\"temperature\":1,\"seed\":1} --spec-draft models/ferrum-tiny-draft --spec-tokens 3"
  )
fi
mkdir -p /tmp/specbench
: >/tmp/specbench/rounds.txt
for r in $(seq "$rounds"); do
  for run in "${runs[@]}"; do
    # shellcheck disable=SC2086
    set -- $run
    name=$1 prompts=$2 body=$3; shift 3
    bench/spec_ab.sh "$name" "$prompts" "$body" "$@" | tee -a /tmp/specbench/rounds.txt
  done
done
python3 - <<'EOF'
import collections, statistics
wall, cpu, info = collections.defaultdict(list), collections.defaultdict(list), {}
for line in open("/tmp/specbench/rounds.txt"):
    f = line.split()
    wall[f[0]].append(float(f[1].split("=")[1]))
    cpu[f[0]].append(float(f[2].split("=")[1]))
    info[f[0]] = " ".join(f[3:])
for k in wall:
    off = "off_" + k.split("_")[-1]
    w, c = statistics.median(wall[k]), statistics.median(cpu[k])
    print(f"{k:20s} wall {w:7.1f} tok/s ({min(wall[k]):.0f}-{max(wall[k]):.0f}, {len(wall[k])} runs) "
          f"x{w / statistics.median(wall[off]):.3f}   per CPU second {c:7.1f} ({min(cpu[k]):.0f}-{max(cpu[k]):.0f}) "
          f"x{c / statistics.median(cpu[off]):.3f}   {info[k]}")
EOF
