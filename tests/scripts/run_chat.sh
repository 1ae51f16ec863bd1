# `ferrum run` with a prompt piped on stdin answers once, and says what the server says for the
# same conversation (greedy), with and without a system prompt.
source "$(dirname "$0")/server_common.bash"
start_server
for SYSTEM in "" "You are terse."; do
  OUT=$(printf 'Hello there\n' | "$FERRUM" run "$MODEL" --temp 0 -n 12 ${SYSTEM:+--system "$SYSTEM"} 2>/dev/null)
  EXPECTED=$(SYSTEM="$SYSTEM" node --input-type=module -e '
    const messages = process.env.SYSTEM ? [{ role: "system", content: process.env.SYSTEM }] : [];
    messages.push({ role: "user", content: "Hello there" });
    const r = await fetch(process.env.FERRUM_URL + "/v1/chat/completions", { method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ messages, temperature: 0, max_tokens: 12 }) });
    process.stdout.write((await r.json()).choices[0].message.content);')
  if [ "$OUT" != "$EXPECTED" ]; then
    echo "FAIL: run printed $(printf %q "$OUT"), the server says $(printf %q "$EXPECTED") (system: '$SYSTEM')"
    exit 1
  fi
done
stop_server
# Errors: no model, a model that does not exist, empty input.
if "$FERRUM" run </dev/null >/dev/null 2>&1; then echo "FAIL: run without a model"; exit 1; fi
if "$FERRUM" run /nonexistent/model </dev/null >/dev/null 2>&1; then echo "FAIL: run with a missing folder"; exit 1; fi
if printf '' | "$FERRUM" run "$MODEL" >/dev/null 2>&1; then echo "FAIL: run with empty input"; exit 1; fi
echo "PASS"
