// Helpers for the server end-to-end tests: a tiny test runner, the fixture's reference
// tokenizer (transformers.js) and chat template (@huggingface/jinja), and raw HTTP helpers.
import fs from "node:fs";
import path from "node:path";
import { TokenizerLoader } from "@lenml/tokenizers";
import { Template } from "@huggingface/jinja";

export const URL_BASE = process.env.FERRUM_URL;
if (!URL_BASE) throw new Error("FERRUM_URL is not set");
export const MODEL_NAME = "tiny-llama";
export const MODEL_DIR = process.env.FERRUM_TEST_MODEL || "tests/fixtures/models/tiny-llama";

const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(MODEL_DIR, "tokenizer_config.json"), "utf8"));
export const reference = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(fs.readFileSync(path.join(MODEL_DIR, "tokenizer.json"), "utf8")),
  tokenizerConfig,
});
const tokenText = (t) => (t && typeof t === "object" ? t.content : t);

// The prompt ids transformers would build for a conversation (template, then no special tokens).
export function referenceChatIds(messages) {
  const text = new Template(tokenizerConfig.chat_template).render({
    messages, add_generation_prompt: true,
    bos_token: tokenText(tokenizerConfig.bos_token), eos_token: tokenText(tokenizerConfig.eos_token),
  });
  return reference.encode(text, { add_special_tokens: false });
}

const results = { passed: 0, failed: 0 };
export async function test(name, fn) {
  try {
    await fn();
    results.passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    results.failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}
export function finish() {
  console.log(`${results.passed} passed, ${results.failed} failed`);
  process.exit(results.failed ? 1 : 0);
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg || "assertion failed");
}
export function eq(a, b, msg) {
  const sa = JSON.stringify(a), sb = JSON.stringify(b);
  if (sa !== sb) throw new Error(`${msg || "values differ"}: got ${sa}, expected ${sb}`);
}

export async function getJson(p, init = {}) {
  const r = await fetch(URL_BASE + p, init);
  const text = await r.text();
  let body = null;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: r.status, headers: r.headers, body };
}
export const postJson = (p, body, headers = {}) =>
  getJson(p, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });

export async function metric(name) {
  const r = await fetch(URL_BASE + "/metrics");
  const text = await r.text();
  const m = text.match(new RegExp(`^${name} ([0-9.e+-]+)$`, "m"));
  return m ? Number(m[1]) : NaN;
}
