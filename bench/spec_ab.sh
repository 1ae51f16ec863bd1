#!/bin/bash
# bench/spec_ab.sh NAME PROMPT_FILE EXTRA_BODY [SERVE FLAGS...]: starts `ferrum serve` (MODEL,
# default ferrum-tiny; THREADS, default 1), runs `ferrum bench serve` at c=1 (N requests of
# OUTLEN tokens from PROMPT_FILE's lines, WARM warm-up) and prints output tok/s, TPOT and the
# speculative decoding acceptance. Results in /tmp/specbench/NAME.out. Run from the repo root.
set -e
mkdir -p /tmp/specbench
name=$1; prompts=$2; extra=$3; shift 3
port=$((18000 + RANDOM % 1000))
FERRUM_LOG=info build/ferrum serve ${MODEL:-models/ferrum-tiny} --port $port --threads ${THREADS:-1} --served-model-name tiny "$@" 2>/tmp/specbench/$name.serve.log &
pid=$!
for i in $(seq 600); do curl -sf http://127.0.0.1:$port/health >/dev/null && break; sleep 0.1; done
build/ferrum bench serve --url http://127.0.0.1:$port --model tiny -c 1 -n ${N:-12} --warmup ${WARM:-2} --output-len ${OUTLEN:-256} \
  --prompt-file $prompts --extra-body "$extra" --quiet --json > /tmp/specbench/$name.out
kill $pid; wait $pid || true
python3 -c "
import json; j=json.loads(open('/tmp/specbench/$name.out').read().splitlines()[-1])
print('$name', 'out_tok_s=%.1f'%j['out_tok_s'], 'tpot=%.2f'%j['tpot_mean_ms'], 'acc=', j['spec_decode_acceptance_rate'], 'len=', j['spec_decode_mean_accepted_length'])"
