# End to end: SIGTERM lets running requests finish, refuses new connections, and exits 0.
source "$(dirname "$0")/server_common.bash"
start_server
OUT=$(mktemp)
# 32 long streams; SIGTERM arrives once they are all under way.
node --input-type=module -e '
  const url = process.env.FERRUM_URL;
  const start = (i) => fetch(url + "/v1/completions", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: "Drain " + i, max_tokens: 200, ignore_eos: true, stream: true, stream_options: { include_usage: true } }) });
  const finish = async (r) => {
    if (r.status !== 200) return "status " + r.status;
    const text = await r.text();
    const events = text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
    const usage = JSON.parse(events[events.length - 2]).usage;
    return events[events.length - 1] === "[DONE]" && usage.completion_tokens === 200 ? "ok" : "bad " + text.slice(-300);
  };
  // "started" once every stream has its headers: all 32 requests are running.
  const responses = await Promise.all(Array.from({ length: 32 }, (_, i) => start(i)));
  console.log("started");
  const res = await Promise.all(responses.map(finish));
  console.log(res.every((r) => r === "ok") ? "ALL-OK" : res.find((r) => r !== "ok"));
' >"$OUT" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 100); do grep -q started "$OUT" && break; sleep 0.05; done
sleep 0.05
kill -TERM "$SERVER_PID"
wait "$NODE_PID" || true
rc=0
wait "$SERVER_PID" || rc=$?
SERVER_PID=""
cat "$OUT"
grep -q "ALL-OK" "$OUT" || { echo "FAIL: requests running at SIGTERM did not complete"; cat "$SERVER_LOG"; exit 1; }
[ "$rc" -eq 0 ] || { echo "FAIL: exit status $rc after SIGTERM"; cat "$SERVER_LOG"; exit 1; }
grep -q "received SIGTERM" "$SERVER_LOG" || { echo "FAIL: no drain logged"; cat "$SERVER_LOG"; exit 1; }
if curl -s -m 2 "$FERRUM_URL/health" >/dev/null; then echo "FAIL: still accepting after exit"; exit 1; fi
echo "PASS"
