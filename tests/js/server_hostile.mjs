// A battery of malformed and hostile requests against `ferrum serve`; every one must get its
// exact status (or a closed connection where HTTP allows nothing better), and afterwards the
// server must still answer /health and serve a normal request.
import net from "node:net";
import { URL_BASE, MODEL_NAME, test, finish, assert, eq, getJson, postJson } from "./server_common.mjs";

const { hostname, port } = new URL(URL_BASE);

// Sends raw bytes and reads until the server closes or timeout; returns {status, text}.
function raw(bytes, { timeoutMs = 5000, chunks = null, delayMs = 0 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(Number(port), hostname);
    let data = Buffer.alloc(0);
    const done = () => {
      sock.destroy();
      const text = data.toString("latin1");
      const m = text.match(/^HTTP\/1\.[01] (\d{3})/);
      resolve({ status: m ? Number(m[1]) : 0, text });
    };
    const timer = setTimeout(done, timeoutMs);
    sock.on("data", (d) => { data = Buffer.concat([data, d]); });
    sock.on("close", () => { clearTimeout(timer); done(); });
    sock.on("error", () => {});
    sock.on("connect", async () => {
      if (!chunks) return sock.write(bytes);
      for (const c of chunks) {
        if (sock.destroyed) return;
        sock.write(c);
        await new Promise((r) => setTimeout(r, delayMs));
      }
    });
  });
}

const post = (path, body, extra = "") => {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body, "utf8");
  return Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}Content-Length: ${b.length}\r\nConnection: close\r\n\r\n`), b]);
};
const chat = (extra) => JSON.stringify({ model: MODEL_NAME, messages: [{ role: "user", content: "hi" }], max_tokens: 2, ...extra });
const chatRaw = (fields) => `{"model":"${MODEL_NAME}","messages":[{"role":"user","content":"hi"}],${fields}}`;

// [name, request bytes, expected status (number or list)]
const cases = [
  // Broken JSON
  ["empty body", post("/v1/chat/completions", ""), 400],
  ["open brace", post("/v1/chat/completions", "{"), 400],
  ["close brace", post("/v1/chat/completions", "}"), 400],
  ["array body", post("/v1/chat/completions", "[]"), 400],
  ["null body", post("/v1/chat/completions", "null"), 400],
  ["number body", post("/v1/chat/completions", "123"), 400],
  ["string body", post("/v1/chat/completions", '"hi"'), 400],
  ["truncated", post("/v1/chat/completions", '{"model":'), 400],
  ["single quotes", post("/v1/chat/completions", "{'model': 1}"), 400],
  ["trailing comma", post("/v1/chat/completions", '{"a":1,}'), 400],
  ["broken array", post("/v1/chat/completions", '{"messages": [}'), 400],
  ["trailing garbage", post("/v1/chat/completions", chat({}) + " x"), 400],
  ["NaN literal", post("/v1/chat/completions", chatRaw('"temperature": NaN')), 400],
  ["Infinity literal", post("/v1/chat/completions", chatRaw('"temperature": Infinity')), 400],
  ["deep nesting", post("/v1/chat/completions", '{"a":' + "[".repeat(200000) + "]".repeat(200000) + "}"), 400],
  ["lone surrogate", post("/v1/chat/completions", chatRaw('"user": "\\ud800"')), 400],
  // Wrong types
  ["messages string", post("/v1/chat/completions", chat({ messages: "hi" })), 400],
  ["messages of numbers", post("/v1/chat/completions", chat({ messages: [1] })), 400],
  ["role number", post("/v1/chat/completions", chat({ messages: [{ role: 1, content: "x" }] })), 400],
  ["content number", post("/v1/chat/completions", chat({ messages: [{ role: "user", content: 5 }] })), 400],
  ["content object", post("/v1/chat/completions", chat({ messages: [{ role: "user", content: {} }] })), 400],
  ["model number", post("/v1/chat/completions", chat({ model: 5 })), 400],
  ["temperature string", post("/v1/chat/completions", chat({ temperature: "1" })), 400],
  ["max_tokens string", post("/v1/chat/completions", chat({ max_tokens: "10" })), 400],
  ["max_tokens bool", post("/v1/chat/completions", chat({ max_tokens: true })), 400],
  ["n string", post("/v1/chat/completions", chat({ n: "2" })), 400],
  ["stream string", post("/v1/chat/completions", chat({ stream: "yes" })), 400],
  ["stop number", post("/v1/chat/completions", chat({ stop: 5 })), 400],
  ["stop list of numbers", post("/v1/chat/completions", chat({ stop: [1] })), 400],
  ["logit_bias list", post("/v1/chat/completions", chat({ logit_bias: [] })), 400],
  ["logit_bias bad key", post("/v1/chat/completions", chat({ logit_bias: { x: 1 } })), 400],
  ["seed string", post("/v1/chat/completions", chat({ seed: "s" })), 400],
  ["top_p list", post("/v1/chat/completions", chat({ top_p: [] })), 400],
  ["tools string", post("/v1/chat/completions", chat({ tools: "x" })), 400],
  ["tool_choice number", post("/v1/chat/completions", chat({ tool_choice: 5 })), 400],
  ["stream_options number", post("/v1/chat/completions", chat({ stream: true, stream_options: 1 })), 400],
  ["chat_template_kwargs string", post("/v1/chat/completions", chat({ chat_template_kwargs: "x" })), 400],
  ["logprobs string", post("/v1/chat/completions", chat({ logprobs: "yes" })), 400],
  ["unknown parameter", post("/v1/chat/completions", chat({ frobnicate: 1 })), 400],
  // Huge and negative numbers
  ["max_tokens 1e308", post("/v1/chat/completions", chat({ max_tokens: 1e308 })), 400],
  ["max_tokens 10^23", post("/v1/chat/completions", chatRaw('"max_tokens": 99999999999999999999999')), 400],
  ["temperature 1e400", post("/v1/chat/completions", chatRaw('"temperature": 1e400')), 400],
  ["n 1e9", post("/v1/chat/completions", chat({ n: 1e9 })), 400],
  ["top_k 1e20", post("/v1/chat/completions", chat({ top_k: 1e20 })), 400],
  ["logit_bias 1e10", post("/v1/chat/completions", chat({ logit_bias: { 1: 1e10 } })), 400],
  ["top_logprobs 1000", post("/v1/chat/completions", chat({ logprobs: true, top_logprobs: 1000 })), 400],
  ["max_tokens -1", post("/v1/chat/completions", chat({ max_tokens: -1 })), 400],
  ["max_tokens 0", post("/v1/chat/completions", chat({ max_tokens: 0 })), 400],
  ["n -1", post("/v1/chat/completions", chat({ n: -1 })), 400],
  ["top_p negative", post("/v1/chat/completions", chat({ top_p: -0.5 })), 400],
  ["temperature negative", post("/v1/chat/completions", chat({ temperature: -1 })), 400],
  ["min_p negative", post("/v1/chat/completions", chat({ min_p: -1 })), 400],
  ["min_tokens negative", post("/v1/chat/completions", chat({ min_tokens: -1 })), 400],
  ["presence_penalty -10", post("/v1/chat/completions", chat({ presence_penalty: -10 })), 400],
  // Messages
  ["empty messages", post("/v1/chat/completions", chat({ messages: [] })), 400],
  ["unknown role", post("/v1/chat/completions", chat({ messages: [{ role: "wizard", content: "x" }] })), 400],
  ["user without content", post("/v1/chat/completions", chat({ messages: [{ role: "user" }] })), 400],
  ["image content", post("/v1/chat/completions", chat({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] })), 400],
  ["prompt over the context", post("/v1/chat/completions", chat({ messages: [{ role: "user", content: "word ".repeat(400) }] })), 400],
  ["completion ids negative", post("/v1/completions", JSON.stringify({ prompt: [-5] })), 400],
  ["completion ids over vocab", post("/v1/completions", JSON.stringify({ prompt: [1 << 30] })), 400],
  ["completion empty prompt list", post("/v1/completions", JSON.stringify({ prompt: [] })), 400],
  // Invalid UTF-8
  ["invalid UTF-8 byte", post("/v1/chat/completions", Buffer.from('{"messages":[{"role":"user","content":"\xff\xfe"}]}', "latin1")), 400],
  ["overlong UTF-8", post("/v1/chat/completions", Buffer.from('{"messages":[{"role":"user","content":"\xc0\xaf"}]}', "latin1")), 400],
  ["truncated UTF-8", post("/v1/completions", Buffer.from('{"prompt":"\xe2\x82"}', "latin1")), 400],
  // Sizes and HTTP framing
  ["10 MB body", post("/v1/chat/completions", "x".repeat(10 << 20)), 413],
  ["huge header", Buffer.from(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(200000)}\r\n\r\n`), [431, 0]],
  ["not HTTP", Buffer.from("GARBAGE\r\n\r\n"), 400],
  ["bad content-length", Buffer.from("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"), 400],
  ["negative content-length", Buffer.from("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), 400],
  ["unknown route", Buffer.from("GET /etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 404],
  ["path traversal", Buffer.from("GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 404],
  ["wrong method", Buffer.from("DELETE /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 405],
  ["made-up method", Buffer.from("BREW /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 405],
  ["GET on a POST route", Buffer.from("GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), 405],
  ["HTTP/1.0 health", Buffer.from("GET /health HTTP/1.0\r\n\r\n"), 200],
  ["chunked request body", Buffer.from(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chat({}).length.toString(16)}\r\n${chat({})}\r\n0\r\n\r\n`), 200],
  ["response_format json_object", post("/v1/chat/completions", chat({ response_format: { type: "json_object" } })), 200],
  // A catastrophic pattern for backtracking matchers: the grammar matcher keeps sets of positions.
  ["json_schema with a catastrophic pattern", post("/v1/chat/completions", chat({ response_format: { type: "json_schema", json_schema: { name: "s", schema: { type: "string", pattern: "(a+)+$" } } } })), 200],
  ["json_schema recursing without end", post("/v1/chat/completions", chat({ response_format: { type: "json_schema", json_schema: { name: "s", schema: { $ref: "#" } } } })), 400],
  ["json_schema with a remote $ref", post("/v1/chat/completions", chat({ guided_json: { $ref: "https://example.com/s.json" } })), 400],
  // a^(10^9): repetitions share one rule per level, so this compiles small; max_tokens ends it.
  ["guided_regex with a huge exact count", post("/v1/chat/completions", chat({ guided_regex: "((a{1000}){1000}){1000}" })), 200],
  ["guided_regex with a count over the limit", post("/v1/chat/completions", chat({ guided_regex: "a{5000}" })), 400],
  ["guided_grammar left-recursive", post("/v1/chat/completions", chat({ guided_grammar: "root ::= root \"a\" | \"a\"" })), 400],
  ["guided_choice empty", post("/v1/chat/completions", chat({ guided_choice: [] })), 400],
  ["tool_choice required", post("/v1/chat/completions", chat({ tools: [{ type: "function", function: { name: "f" } }], tool_choice: "required" })), 400],
  ["tokenize without prompt", post("/tokenize", "{}"), 400],
  ["detokenize bad ids", post("/detokenize", JSON.stringify({ tokens: [-1] })), 400],
];

await test(`battery of ${cases.length} hostile requests`, async () => {
  assert(cases.length >= 50, "at least 50 cases");
  const failures = [];
  for (const [name, bytes, expected] of cases) {
    const r = await raw(bytes);
    const ok = Array.isArray(expected) ? expected.includes(r.status) : r.status === expected;
    if (!ok) failures.push(`${name}: got ${r.status}, expected ${expected}: ${r.text.slice(0, 300)}`);
    if (r.status >= 400 && r.status !== 431) {
      const body = r.text.slice(r.text.indexOf("\r\n\r\n") + 4);
      try {
        const j = JSON.parse(body);
        if (typeof j.error?.message !== "string") failures.push(`${name}: no OpenAI error body`);
      } catch {
        failures.push(`${name}: error body is not JSON: ${body.slice(0, 200)}`);
      }
    }
  }
  assert(failures.length === 0, "\n" + failures.join("\n"));
});

await test("abrupt and slow clients do not block others", async () => {
  // Connections that close at once or mid-request.
  await Promise.all(Array.from({ length: 20 }, (_, i) => raw(Buffer.from("POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"mes".slice(0, i * 3)), { timeoutMs: 50 })));
  // Slowloris: 30 clients dribbling headers while a normal request is served.
  const slow = Array.from({ length: 30 }, () => raw(null, { chunks: "GET /health HTTP/1.1\r\nHost: x\r\n".split(""), delayMs: 50, timeoutMs: 2000 }));
  const t0 = Date.now();
  const r = await postJson("/v1/chat/completions", JSON.parse(chat({})));
  eq(r.status, 200);
  assert(Date.now() - t0 < 2000, "a normal request waited behind slow clients");
  await Promise.all(slow);
  // A streaming client that goes away mid-stream.
  const ctrl = new AbortController();
  const s = await fetch(URL_BASE + "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" }, body: chat({ stream: true, max_tokens: 200, ignore_eos: true }), signal: ctrl.signal });
  const reader = s.body.getReader();
  await reader.read();
  ctrl.abort();
});

await test("after the battery: /health and a normal request still work", async () => {
  eq((await getJson("/health")).status, 200);
  const r = await postJson("/v1/chat/completions", { model: MODEL_NAME, messages: [{ role: "user", content: "Hello" }], max_tokens: 4, ignore_eos: true });
  eq(r.status, 200);
  eq(r.body.usage.completion_tokens, 4);
  assert(typeof r.body.choices[0].message.content === "string");
});

finish();
