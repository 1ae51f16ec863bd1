// --api-key and --cors-origin: 401 without the key (every route but /health), the official
// client with the key works, and a browser's preflight passes without it.
import OpenAI from "openai";
import { URL_BASE, MODEL_NAME, test, finish, assert, eq, getJson } from "./server_common.mjs";

const KEY = process.env.FERRUM_TEST_KEY;
const ORIGIN = process.env.FERRUM_TEST_ORIGIN;
const hello = [{ role: "user", content: "Hello" }];

await test("requests without the right key get 401", async () => {
  for (const [path, method] of [["/v1/models", "GET"], ["/v1/chat/completions", "POST"], ["/v1/completions", "POST"], ["/metrics", "GET"], ["/tokenize", "POST"], ["/nope", "GET"]]) {
    const r = await getJson(path, { method, headers: { "Content-Type": "application/json" }, body: method === "POST" ? "{}" : undefined });
    eq(r.status, 401, `${method} ${path}`);
    eq(r.body.error.type, "authentication_error");
  }
  const wrong = new OpenAI({ baseURL: URL_BASE + "/v1", apiKey: KEY + "x", maxRetries: 0 });
  try {
    await wrong.chat.completions.create({ model: MODEL_NAME, messages: hello, max_tokens: 2 });
    throw new Error("accepted a wrong key");
  } catch (e) {
    eq(e.status, 401);
    assert(e instanceof OpenAI.AuthenticationError, "AuthenticationError");
  }
});

await test("/health needs no key; the right key works", async () => {
  eq((await getJson("/health")).status, 200);
  const client = new OpenAI({ baseURL: URL_BASE + "/v1", apiKey: KEY, maxRetries: 0 });
  const r = await client.chat.completions.create({ model: MODEL_NAME, messages: hello, max_tokens: 2 });
  eq(r.choices.length, 1);
  const s = await client.chat.completions.create({ model: MODEL_NAME, messages: hello, max_tokens: 2, stream: true });
  let n = 0;
  for await (const _ of s) n++;
  assert(n >= 2);
});

await test("CORS preflight without the key, headers on real responses", async () => {
  const pre = await fetch(URL_BASE + "/v1/chat/completions", {
    method: "OPTIONS",
    headers: { Origin: ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type" },
  });
  eq(pre.status, 204);
  eq(pre.headers.get("access-control-allow-origin"), ORIGIN);
  assert(pre.headers.get("access-control-allow-methods").includes("POST"));
  assert(pre.headers.get("access-control-allow-headers").toLowerCase().includes("authorization"));
  const real = await fetch(URL_BASE + "/v1/models", { headers: { Origin: ORIGIN, Authorization: `Bearer ${KEY}` } });
  eq(real.status, 200);
  eq(real.headers.get("access-control-allow-origin"), ORIGIN);
  const denied = await fetch(URL_BASE + "/v1/models", { headers: { Origin: ORIGIN } });
  eq(denied.status, 401);
  eq(denied.headers.get("access-control-allow-origin"), ORIGIN, "errors carry CORS headers so browsers can read them");
  const other = await fetch(URL_BASE + "/health", { headers: { Origin: "https://elsewhere.example" } });
  eq(other.headers.get("access-control-allow-origin"), null, "an origin not allowed gets no CORS header");
});

finish();
