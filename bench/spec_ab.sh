#!/bin/bash
# bench/spec_ab.sh NAME PROMPT_FILE EXTRA_BODY [SERVE FLAGS...]: starts `ferrum serve` (FERRUM,
# default build/ferrum; MODEL, default ferrum-tiny; THREADS, default 1), runs `ferrum bench
# serve` (CLIENT, default build/ferrum) at concurrency C (default 1: N requests of OUTLEN tokens
# from PROMPT_FILE's lines, WARM
# warm-up) and prints output tok/s, output tokens per second of the server's CPU time, TPOT, the
# speculative decoding acceptance and the steps' share that overlapped the step before (model
# sampling: FERRUM_MODEL_SAMPLING=1). Results in /tmp/specbench/NAME.out. Run from the repo root.
set -e
mkdir -p /tmp/specbench
name=$1; prompts=$2; extra=$3; shift 3
port=$((18000 + RANDOM % 1000))
FERRUM=${FERRUM:-build/ferrum}
FERRUM_LOG=info $FERRUM serve ${MODEL:-models/ferrum-tiny} --port $port --threads ${THREADS:-1} --served-model-name tiny "$@" 2>/tmp/specbench/$name.serve.log &
pid=$!
for i in $(seq 600); do curl -sf http://127.0.0.1:$port/health >/dev/null && break; sleep 0.1; done
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }  # the server's user + system CPU time, in ticks
cpu0=$(cpu)
${CLIENT:-build/ferrum} bench serve --url http://127.0.0.1:$port --model tiny -c ${C:-1} -n ${N:-12} --warmup ${WARM:-2} --output-len ${OUTLEN:-256} \
  --prompt-file $prompts --extra-body "$extra" --quiet --json > /tmp/specbench/$name.out
cpu_ticks=$(( $(cpu) - cpu0 ))
steps=$(curl -sf http://127.0.0.1:$port/metrics | awk '/^ferrum_steps_(device_sampled|overlapped|host_sampled)_total/ {printf "%s=%s ", $1, $2}')
kill $pid; wait $pid || true
# cpu_tok_s: output tokens (warm-up requests included) per second of the server's CPU time, which
# a loaded machine disturbs far less than the wall clock.
python3 -c "
import json, os; j=json.loads(open('/tmp/specbench/$name.out').read().splitlines()[-1])
cpu_s = $cpu_ticks / os.sysconf('SC_CLK_TCK'); tokens = (${N:-12} + ${WARM:-2}) * ${OUTLEN:-256}
st = dict(kv.split('=') for kv in '$steps'.split())
dev, ovl, host = (float(st.get('ferrum_steps_%s_total' % k, 0)) for k in ('device_sampled', 'overlapped', 'host_sampled'))
print('$name', 'out_tok_s=%.1f'%j['out_tok_s'], 'cpu_tok_s=%.1f'%(tokens / cpu_s), 'tpot=%.2f'%j['tpot_mean_ms'], 'acc=', j['spec_decode_acceptance_rate'], 'len=', j['spec_decode_mean_accepted_length'],
      'overlapped=%.3f' % (ovl / max(1.0, dev + host)))"
