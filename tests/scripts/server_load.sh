# End to end: 512 concurrent streaming requests, and disconnects that free KV (via /metrics).
source "$(dirname "$0")/server_common.bash"
# A step budget that admits all 512 prompts together, so that they are open at once.
start_server --max-num-seqs 512 --max-num-batched-tokens 8192
node tests/js/server_load.mjs
stop_server
# A tiny waiting queue: floods get 503 + Retry-After, the rest is served.
start_server --max-num-seqs 1 --max-waiting 2
FERRUM_SMALL_QUEUE=1 node tests/js/server_load.mjs
stop_server
echo "PASS"
