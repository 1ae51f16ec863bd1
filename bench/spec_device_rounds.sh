#!/bin/bash
# bench/spec_device_rounds.sh ROUNDS: n-gram lookup against no speculation on plain text
# (temperature 1, seeded) with ferrum-tiny (bench/spec_ab.sh: one thread, 256 output tokens), at
# c=1 and c=4, in interleaved rounds so that a shared machine's load falls on all settings alike.
# Settings, each off / n-gram (adaptive, K = 3) / n-gram that never matches (n = 8):
#   host    the CPU default: the host Sampler picks every token
#   model   FERRUM_MODEL_SAMPLING=1: the model's own sampler and overlapped steps, the engine
#           path of a GPU (steps that propose nothing stay on it)
#   before  BEFORE=path/to/ferrum (optional): a binary from before that change, host sampling;
#           it ran every step of a speculating engine on the host, on a GPU too (as
#           FERRUM_HOST_SAMPLING=1 does now)
# FERRUM / CLIENT: the server's and the load generator's binary (default build/ferrum).
# PROMPTS / BODY: another prompt file / request body (e.g. the repetitive prompts, greedy).
# Prints each setting's median output tok/s (range) and its ratio to off in the same setting,
# and output tokens per second of the server's CPU time. Run from the repo root.
set -e
rounds=${1:-3}
P=${PROMPTS:-bench/spec_prompts/plain.txt}
BODY=${BODY:-'{"temperature":1,"seed":1}'}
mkdir -p /tmp/specbench
: >/tmp/specbench/device_rounds.txt
run() {  # run NAME C [env...] -- [serve flags...]
  local name=$1 c=$2; shift 2
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  local n=12; [ "$c" = 4 ] && n=16
  env "${envs[@]}" C=$c N=$n bench/spec_ab.sh "$name" $P "$BODY" "$@" | tee -a /tmp/specbench/device_rounds.txt
}
for r in $(seq "$rounds"); do
  for c in 1 4; do
    for setting in host model before; do
      envs=()
      [ $setting = model ] && envs=(FERRUM_MODEL_SAMPLING=1)
      if [ $setting = before ]; then
        [ -n "$BEFORE" ] || continue
        envs=(FERRUM=$BEFORE)
      fi
      run c${c}_${setting}_off "$c" "${envs[@]}" --
      run c${c}_${setting}_ngram "$c" "${envs[@]}" -- --spec-ngram --spec-tokens 3
      run c${c}_${setting}_never "$c" "${envs[@]}" -- --spec-ngram --spec-tokens 3 --spec-ngram-min 8 --spec-ngram-max 8
    done
  done
done
python3 - <<'PY'
import collections, statistics
wall, cpu, info = collections.defaultdict(list), collections.defaultdict(list), {}
for line in open("/tmp/specbench/device_rounds.txt"):
    f = line.split()
    wall[f[0]].append(float(f[1].split("=")[1]))
    cpu[f[0]].append(float(f[2].split("=")[1]))
    info[f[0]] = " ".join(f[3:])
for k in wall:
    off = k.rsplit("_", 1)[0] + "_off"
    w, c = statistics.median(wall[k]), statistics.median(cpu[k])
    print(f"{k:18s} wall {w:7.1f} tok/s ({min(wall[k]):.0f}-{max(wall[k]):.0f}, {len(wall[k])} runs) "
          f"x{w / statistics.median(wall[off]):.3f}   per CPU second {c:7.1f} x{c / statistics.median(cpu[off]):.3f}   {info[k]}")
PY
