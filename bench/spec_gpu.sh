#!/usr/bin/env bash
# Speculative decoding on a GPU (issue 15). Run from the repo root on the GPU machine:
#   FERRUM=.carry/bin/ferrum OUT=/some/dir bench/spec_gpu.sh
# The Llama-3.1-8B shape with random bf16 weights (--dummy bf16; MODEL: a folder with its
# config.json and a tokenizer.json, default .carry/models/llama-3.1-8b from
# scripts/pack-for-gpu.sh), measured by `ferrum bench serve` at c=1 and c=4, 256 output tokens
# per request (ignore_eos), prompts from bench/spec_prompts/ (one per line):
#   off         no speculation (device sampling, overlapped steps)
#   ngram-none  n-gram lookup configured with n = 64, which never matches: what configuring
#               speculation costs by itself (host sampling of every step, no overlap)
#   self-draft  the target as its own draft, K = 4, greedy. --dummy fills every tensor from a
#               seed of its name (backend/dummy_fill.h), so the draft's weights are the target's:
#               acceptance ~1. It measures the verification overhead; a profiled run then gives
#               the upper bound of a free draft (tokens per step / the target's time per step).
#   ngram       n-gram lookup, K = 3 (adaptive, the default), on repetitive.txt (greedy) and
#               plain.txt (temperature 1); ngram-always: every proposal verified (--spec-ngram-always)
# and, if DRAFT (default models/ferrum-tiny-draft) exists, ferrum-tiny at c=1 without and with
# it (K = 3, greedy and temperature 1), and with n-gram lookup on repetitive.txt.
# Prints one line per run (out tok/s, TPOT, acceptance rate, mean accepted length, ratio to
# off on the same prompts, sampling and c) and writes $OUT/results.txt, $OUT/results.jsonl and
# each server's log. About 4 minutes on an H200.
# RUNS=overlap instead measures what speculation costs where it does not pay, on the 8B shape:
# off, ngram-none and ngram (plain T=1 and greedy, repetitive greedy; c=1 and c=4), ngram-always,
# and ngram-none / ngram again with FERRUM_HOST_SAMPLING=1 (every step sampled on the host and
# none overlapped: how a speculating engine ran before the steps that propose nothing were
# kept on the device). About 3 minutes.
# Environment: FERRUM (default build/ferrum), MODEL, DRAFT, OUT (default /tmp/spec_gpu), DEVICE
# (cuda), N1 / N4 (measured requests at c=1 / c=4: 6 / 8), KV (KV cache memory, 16GiB), PORT,
# RUNS (overlap, or a subset of "off ngram-none self-draft ngram ngram-always profile tiny";
# default all), WEIGHTS (the 8B runs' weight flags, default "--dummy bf16"; empty: MODEL's own
# files, e.g. a random checkpoint of tools/random_greedy_agreement.py --save).
set -euo pipefail
cd "$(dirname "$0")/.."
FERRUM=${FERRUM:-build/ferrum}
MODEL=${MODEL:-.carry/models/llama-3.1-8b}
DRAFT=${DRAFT:-models/ferrum-tiny-draft}
OUT=${OUT:-/tmp/spec_gpu}
DEVICE=${DEVICE:-cuda}
N1=${N1:-6}   # measured requests at c=1
N4=${N4:-8}   # and at c=4
PORT=${PORT:-8431}
KV=${KV:-16GiB}  # KV cache memory of each server
RUNS=${RUNS:-off ngram-none self-draft ngram ngram-always profile tiny}  # which of the runs above
read -ra WEIGHTS <<<"${WEIGHTS---dummy bf16}"
want() { [[ " $RUNS " == *" $1 "* ]]; }
# The carried Debian libraries (scripts/pack-for-gpu.sh) for ferrum only: the machine's own curl
# fails on the carried libcurl.
# `env` execs ferrum, so that $! of a server is ferrum's pid.
libs=$(dirname "$FERRUM")/../lib
FERRUM_CMD=("$FERRUM")
[ -d "$libs" ] && FERRUM_CMD=(env "LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$FERRUM")
mkdir -p "$OUT"
: >"$OUT/results.jsonl"
: >"$OUT/results.txt"
PLAIN=bench/spec_prompts/plain.txt REP=bench/spec_prompts/repetitive.txt
GREEDY='{"temperature":0}' SAMPLED='{"temperature":1,"seed":1}'
[ -f "$MODEL/config.json" ] && [ -f "$MODEL/tokenizer.json" ] || { echo "MODEL=$MODEL needs config.json and tokenizer.json"; exit 1; }

PID=
stop() { [ -n "$PID" ] && { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }; PID=; }
trap stop EXIT

# serve NAME MODEL_DIR [flags...]: starts the server, waits until it is ready.
serve() {
  local name=$1 dir=$2; shift 2
  stop
  SERVER=$name
  "${FERRUM_CMD[@]}" serve "$dir" --port "$PORT" --served-model-name m --device "$DEVICE" \
    --kv-cache-memory "$KV" --max-num-seqs 16 "$@" >"$OUT/$name.serve.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do
    grep -q "ferrum is ready" "$OUT/$name.serve.log" && return 0
    kill -0 "$PID" 2>/dev/null || { tail -20 "$OUT/$name.serve.log"; echo "server $name died"; exit 1; }
    sleep 0.2
  done
  echo "server $name not ready after 120 s"; exit 1
}

# The server's step counters (device-sampled, overlapped, host-sampled), warm-up included.
steps() { curl -sf "http://127.0.0.1:$PORT/metrics" | awk '/^ferrum_steps_(device_sampled|overlapped|host_sampled)_total/ {printf "%s ", $2}'; }

# measure LABEL PROMPTS BODY C N: one `ferrum bench serve` run against the current server.
measure() {
  local label=$1 prompts=$2 body=$3 c=$4 n=$5 line steps0
  steps0=$(steps)
  line=$("${FERRUM_CMD[@]}" bench serve --url "http://127.0.0.1:$PORT" --model m -c "$c" -n "$n" --warmup 2 \
         --output-len 256 --prompt-file "$prompts" --extra-body "$body" --json -q | tail -1)
  python3 - "$line" "$SERVER" "$label" "$(basename "$prompts" .txt)" "$body" "$c" "$OUT" "$steps0" "$(steps)" <<'EOF'
import json, sys
line, server, label, prompts, body, c, out, steps0, steps1 = sys.argv[1:]
r = json.loads(line)
d = [float(b) - float(a) for a, b in zip(steps0.split(), steps1.split())]  # device, overlapped, host
overlapped = d[1] / max(1.0, d[0] + d[2]) if len(d) == 3 else None
sampling = "greedy" if json.loads(body).get("temperature", 1) == 0 else "T=1"
row = {"server": server, "run": label, "prompts": prompts, "sampling": sampling, "c": int(c),
       "out_tok_s": r["out_tok_s"], "tpot_mean_ms": r["tpot_mean_ms"], "tpot_p50_ms": r["tpot_p50_ms"],
       "acceptance": r.get("spec_decode_acceptance_rate"), "mean_accepted_length": r.get("spec_decode_mean_accepted_length"),
       "draft_tokens": r.get("spec_decode_draft_tokens"), "accepted_tokens": r.get("spec_decode_accepted_tokens"),
       "overlapped_steps": overlapped, "failed": r["failed"]}
base = None
with open(f"{out}/results.jsonl") as f:
    for prev in map(json.loads, f):
        if prev["run"].endswith(":off") and prev["run"].split(":")[0] == label.split(":")[0] and \
           (prev["prompts"], prev["sampling"], prev["c"]) == (prompts, sampling, int(c)):
            base = prev["out_tok_s"]
row["ratio_to_off"] = round(row["out_tok_s"] / base, 3) if base else None
with open(f"{out}/results.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")
fmt = lambda v, f: "-" if v is None else format(v, f)
text = (f"{label:24s} {prompts:10s} {sampling:6s} c={c}  {row['out_tok_s']:8.1f} out tok/s  "
        f"TPOT {row['tpot_mean_ms']:6.2f} ms  acceptance {fmt(row['acceptance'], '.3f')}  "
        f"mean accepted length {fmt(row['mean_accepted_length'], '.2f')}  overlapped {fmt(overlapped, '.3f')}  "
        f"x{fmt(row['ratio_to_off'], '.3f')} of off"
        + (f"  FAILED {r['failed']}" if r["failed"] else ""))
print(text, flush=True)
with open(f"{out}/results.txt", "a") as f:
    f.write(text + "\n")
EOF
}

t0=$SECONDS
echo "ferrum: $FERRUM; model: $MODEL; device: $DEVICE; results in $OUT"
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv,noheader 2>/dev/null || true

# measure_all LABEL: plain T=1 at c=1 and c=4, plain greedy and repetitive greedy at c=1 and c=4.
measure_all() {
  for c in 1 4; do
    n=$([ $c = 1 ] && echo $N1 || echo $N4)
    measure "$1" "$PLAIN" "$SAMPLED" $c $n
    measure "$1" "$PLAIN" "$GREEDY" $c $n
    measure "$1" "$REP" "$GREEDY" $c $n
  done
}
if [ "$RUNS" = overlap ]; then
  NONE=(--spec-ngram --spec-tokens 3 --spec-ngram-min 64 --spec-ngram-max 64)
  serve l8b-off "$MODEL" "${WEIGHTS[@]}"
  measure_all l8b:off
  serve l8b-ngram-none "$MODEL" "${WEIGHTS[@]}" "${NONE[@]}"
  measure_all l8b:ngram-none
  FERRUM_HOST_SAMPLING=1 serve l8b-ngram-none-host "$MODEL" "${WEIGHTS[@]}" "${NONE[@]}"
  measure_all l8b:ngram-none-host
  serve l8b-ngram "$MODEL" "${WEIGHTS[@]}" --spec-ngram --spec-tokens 3
  measure_all l8b:ngram-K3
  FERRUM_HOST_SAMPLING=1 serve l8b-ngram-host "$MODEL" "${WEIGHTS[@]}" --spec-ngram --spec-tokens 3
  measure_all l8b:ngram-K3-host
  serve l8b-ngram-always "$MODEL" "${WEIGHTS[@]}" --spec-ngram --spec-tokens 3 --spec-ngram-always
  measure l8b:ngram-K3-always "$PLAIN" "$SAMPLED" 1 $N1
  measure l8b:ngram-K3-always "$REP" "$GREEDY" 1 $N1
  stop
  echo "done in $((SECONDS - t0)) s; $OUT/results.txt"
  exit 0
fi

if want off; then
serve l8b-off "$MODEL" "${WEIGHTS[@]}"
for c in 1 4; do
  n=$([ $c = 1 ] && echo $N1 || echo $N4)
  measure l8b:off "$PLAIN" "$SAMPLED" $c $n
  measure l8b:off "$PLAIN" "$GREEDY" $c $n
  measure l8b:off "$REP" "$GREEDY" $c $n
done
fi

if want ngram-none; then
serve l8b-ngram-none "$MODEL" "${WEIGHTS[@]}" --spec-ngram --spec-tokens 3 --spec-ngram-min 64 --spec-ngram-max 64
measure l8b:ngram-none "$PLAIN" "$SAMPLED" 1 $N1
measure l8b:ngram-none "$PLAIN" "$SAMPLED" 4 $N4
fi

if want self-draft; then
serve l8b-self-draft "$MODEL" "${WEIGHTS[@]}" --spec-draft "$MODEL" --spec-tokens 4
measure l8b:self-draft-K4 "$PLAIN" "$GREEDY" 1 $N1
measure l8b:self-draft-K4 "$PLAIN" "$GREEDY" 4 $N4
fi

if want ngram; then
serve l8b-ngram "$MODEL" "${WEIGHTS[@]}" --spec-ngram --spec-tokens 3
for c in 1 4; do
  n=$([ $c = 1 ] && echo $N1 || echo $N4)
  measure l8b:ngram-K3 "$REP" "$GREEDY" $c $n
  measure l8b:ngram-K3 "$PLAIN" "$SAMPLED" $c $n
done
measure l8b:ngram-K3 "$PLAIN" "$GREEDY" 1 $N1
fi

if want ngram-always; then
serve l8b-ngram-always "$MODEL" "${WEIGHTS[@]}" --spec-ngram --spec-tokens 3 --spec-ngram-always
measure l8b:ngram-K3-always "$REP" "$GREEDY" 1 $N1
measure l8b:ngram-K3-always "$PLAIN" "$SAMPLED" 1 $N1
fi

if want profile; then
# The self-draft profiled (FERRUM_PROFILE syncs the GPU: its tok/s is not comparable):
# per step, `schedule` holds the draft's K forwards and `launch`+`collect`+`emit` the target's
# verification. A free draft would give (accepted length) tokens per verification step.
FERRUM_PROFILE=1 serve l8b-self-draft-profile "$MODEL" "${WEIGHTS[@]}" --spec-draft "$MODEL" --spec-tokens 4
measure l8b:self-draft-K4-profiled "$PLAIN" "$GREEDY" 1 4
stop
python3 - "$OUT" <<'EOF' | tee -a "$OUT/results.txt"
import json, re, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/results.jsonl")]
prof = [l for l in open(f"{out}/l8b-self-draft-profile.serve.log") if "engine profile" in l]
off = next((r for r in rows if r["run"] == "l8b:off" and r["c"] == 1 and r["sampling"] == "greedy" and r["prompts"] == "plain"), None)
spec = next((r for r in rows if r["run"] == "l8b:self-draft-K4-profiled"), None)
if not prof or not off or not spec:
    sys.exit(print("self-draft upper bound: no profile line (too few steps?)"))
m = re.search(r"schedule ([\d.]+) ms, launch ([\d.]+) ms, collect ([\d.]+) ms, emit ([\d.]+) ms", prof[-1])
s, l, c, e = map(float, m.groups())
tokens = spec["mean_accepted_length"] or 1.0
bound = tokens * 1000.0 / (l + c + e)
print(f"self-draft K=4, profiled: {s:.2f} ms drafting + {l + c + e:.2f} ms verifying per step, {tokens:.2f} tokens per step; "
      f"with a free draft: {bound:.0f} tok/s = x{bound / off['out_tok_s']:.2f} of off ({off['out_tok_s']:.1f} tok/s, c=1 greedy)")
EOF
fi

if want tiny && [ -f "$DRAFT/config.json" ]; then
  serve tiny-off models/ferrum-tiny
  measure tiny:off "$PLAIN" "$GREEDY" 1 8
  measure tiny:off "$PLAIN" "$SAMPLED" 1 8
  measure tiny:off "$REP" "$GREEDY" 1 8
  serve tiny-draft models/ferrum-tiny --spec-draft "$DRAFT" --spec-tokens 3
  measure tiny:draft-K3 "$PLAIN" "$GREEDY" 1 8
  measure tiny:draft-K3 "$PLAIN" "$SAMPLED" 1 8
  serve tiny-ngram models/ferrum-tiny --spec-ngram --spec-tokens 3
  measure tiny:ngram-K3 "$REP" "$GREEDY" 1 8
  measure tiny:ngram-K3 "$PLAIN" "$SAMPLED" 1 8
  stop
elif want tiny; then
  echo "no draft at $DRAFT: ferrum-tiny runs skipped (scripts/gpu-train-draft.sh makes it)"
fi
echo "done in $((SECONDS - t0)) s; $OUT/results.txt"
