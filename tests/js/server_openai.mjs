// End-to-end: the official `openai` client against `ferrum serve` on the fixture model.
// Expected values come from transformers.js / @huggingface/jinja (prompt token counts) or
// from the API's own invariants (streamed == non-streamed, seeds reproduce, stop cuts).
import OpenAI from "openai";
import { URL_BASE, MODEL_NAME, reference, referenceChatIds, test, finish, assert, eq, getJson, postJson, metric } from "./server_common.mjs";

const client = new OpenAI({ baseURL: URL_BASE + "/v1", apiKey: "unused", maxRetries: 0 });
const hello = [{ role: "user", content: "Hello! Tell me about the sea." }];
const greedy = { model: MODEL_NAME, temperature: 0, ignore_eos: true };

async function collectChat(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

let greedyText = "";

await test("models list the served name", async () => {
  const models = await client.models.list();
  eq(models.data.map((m) => m.id), [MODEL_NAME]);
  eq((await client.models.retrieve(MODEL_NAME)).id, MODEL_NAME);
});

await test("chat: usage matches the reference tokenizer and max_tokens", async () => {
  const r = await client.chat.completions.create({ ...greedy, messages: hello, max_tokens: 12 });
  eq(r.object, "chat.completion");
  eq(r.choices.length, 1);
  eq(r.choices[0].message.role, "assistant");
  eq(r.choices[0].finish_reason, "length");
  eq(r.usage.prompt_tokens, referenceChatIds(hello).length, "prompt_tokens");
  eq(r.usage.completion_tokens, 12);
  eq(r.usage.total_tokens, r.usage.prompt_tokens + 12);
  assert(typeof r.usage.prompt_tokens_details.cached_tokens === "number");
  greedyText = r.choices[0].message.content;
  assert(greedyText.length > 0, "empty content");
});

await test("chat: greedy is deterministic and streaming gives the same text", async () => {
  const again = await client.chat.completions.create({ ...greedy, messages: hello, max_tokens: 12 });
  eq(again.choices[0].message.content, greedyText);
  const chunks = await collectChat({ ...greedy, messages: hello, max_tokens: 12, stream_options: { include_usage: true } });
  eq(chunks[0].choices[0].delta.role, "assistant", "first delta carries the role");
  const last = chunks[chunks.length - 1];
  eq(last.choices, [], "usage chunk has no choices");
  eq(last.usage.completion_tokens, 12);
  eq(last.usage.prompt_tokens, referenceChatIds(hello).length);
  let text = "";
  let finishes = 0;
  for (const c of chunks.slice(0, -1)) {
    eq(c.object, "chat.completion.chunk");
    eq(c.usage, null, "usage is null before the last chunk");
    text += c.choices[0].delta.content || "";
    if (c.choices[0].finish_reason) { finishes++; eq(c.choices[0].finish_reason, "length"); }
  }
  eq(finishes, 1, "one finish chunk");
  eq(text, greedyText, "streamed text");
});

await test("chat: without include_usage no usage chunk", async () => {
  const chunks = await collectChat({ ...greedy, messages: hello, max_tokens: 3 });
  assert(chunks.every((c) => c.choices.length === 1), "every chunk has a choice");
  assert(chunks.every((c) => c.usage === undefined || c.usage === null));
});

await test("chat: max_completion_tokens", async () => {
  const r = await client.chat.completions.create({ ...greedy, messages: hello, max_completion_tokens: 5 });
  eq(r.usage.completion_tokens, 5);
});

await test("chat: cached_tokens on a repeated prompt", async () => {
  const long = [{ role: "user", content: "The quick brown fox jumps over the lazy dog. ".repeat(8) + Date.now() }];
  const first = await client.chat.completions.create({ ...greedy, messages: long, max_tokens: 2 });
  const second = await client.chat.completions.create({ ...greedy, messages: long, max_tokens: 2 });
  const c1 = first.usage.prompt_tokens_details.cached_tokens, c2 = second.usage.prompt_tokens_details.cached_tokens;
  assert(c2 > c1, `cached_tokens did not grow: ${c1} then ${c2}`);
  assert(c2 < second.usage.prompt_tokens, "at least one prompt token is computed");
  assert(c2 >= 16, `expected at least one full block cached, got ${c2}`);
});

await test("chat: logprobs shape and greedy choice", async () => {
  const r = await client.chat.completions.create({ ...greedy, messages: hello, max_tokens: 8, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs.content;
  eq(content.length, 8, "one logprob per token");
  for (const e of content) {
    assert(e.logprob <= 0, "logprob <= 0");
    eq(e.top_logprobs.length, 3, "top_logprobs length");
    for (let i = 1; i < 3; i++) assert(e.top_logprobs[i - 1].logprob >= e.top_logprobs[i].logprob, "sorted");
    assert(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4, "greedy picks the top token");
    if (!e.token.includes("\ufffd")) eq(e.bytes, Array.from(Buffer.from(e.token, "utf8")), "bytes");
  }
  if (!content.some((e) => e.token.includes("\ufffd")))
    eq(content.map((e) => e.token).join(""), r.choices[0].message.content, "tokens concatenate to the content");
  const none = await client.chat.completions.create({ ...greedy, messages: hello, max_tokens: 2 });
  eq(none.choices[0].logprobs, null);
  // Streamed: the same entries, spread over the chunks.
  const chunks = await collectChat({ ...greedy, messages: hello, max_tokens: 8, logprobs: true, top_logprobs: 3 });
  const streamed = chunks.flatMap((c) => c.choices[0]?.logprobs?.content || []);
  eq(streamed.map((e) => [e.token, e.logprob.toFixed(4)]), content.map((e) => [e.token, e.logprob.toFixed(4)]), "streamed logprobs");
});

await test("completions: logprobs shape", async () => {
  const r = await client.completions.create({ ...greedy, prompt: "Once upon a time", max_tokens: 6, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  eq(lp.tokens.length, 6);
  eq(lp.token_logprobs.length, 6);
  eq(lp.top_logprobs.length, 6);
  let offset = 0;
  for (let i = 0; i < 6; i++) {
    eq(lp.text_offset[i], offset, "text_offset");
    offset += Buffer.byteLength(lp.tokens[i], "utf8");
    assert(Object.keys(lp.top_logprobs[i]).length <= 2 && Object.keys(lp.top_logprobs[i]).length >= 1);
  }
});

await test("completions: string, token ids and lists of prompts", async () => {
  const prompt = "The capital of France is";
  const ids = reference.encode(prompt);
  const a = await client.completions.create({ ...greedy, prompt, max_tokens: 8 });
  const b = await client.completions.create({ ...greedy, prompt: ids, max_tokens: 8 });
  eq(a.object, "text_completion");
  eq(a.usage.prompt_tokens, ids.length, "prompt_tokens = reference encoding");
  eq(b.choices[0].text, a.choices[0].text, "ids give the same greedy text");
  const c = await client.completions.create({ ...greedy, prompt: [prompt, "Hi"], max_tokens: 4 });
  eq(c.choices.map((x) => x.index), [0, 1]);
  eq(c.choices[0].text, a.choices[0].text.slice(0, c.choices[0].text.length));
  eq(c.usage.prompt_tokens, ids.length + reference.encode("Hi").length);
  const d = await client.completions.create({ ...greedy, prompt: [ids, reference.encode("Hi")], max_tokens: 4 });
  eq(d.choices.map((x) => x.text), c.choices.map((x) => x.text));
  const s = await client.completions.create({ ...greedy, prompt, max_tokens: 8, stream: true });
  let text = "";
  for await (const ch of s) text += ch.choices[0]?.text || "";
  eq(text, a.choices[0].text, "streamed completion");
});

await test("n=2 gives two choices and counts both", async () => {
  const r = await client.chat.completions.create({ model: MODEL_NAME, messages: hello, n: 2, max_tokens: 6, seed: 7, ignore_eos: true });
  eq(r.choices.map((c) => c.index), [0, 1]);
  eq(r.usage.completion_tokens, 12);
  const chunks = await collectChat({ model: MODEL_NAME, messages: hello, n: 2, max_tokens: 6, seed: 7, ignore_eos: true });
  const texts = ["", ""];
  for (const c of chunks) for (const ch of c.choices) texts[ch.index] += ch.delta.content || "";
  eq(texts, r.choices.map((c) => c.message.content), "streamed n=2 equals non-streamed with the same seed");
});

await test("seed reproduces sampling", async () => {
  const run = (seed) => client.chat.completions.create({ model: MODEL_NAME, messages: hello, temperature: 1, seed, max_tokens: 16, ignore_eos: true })
    .then((r) => r.choices[0].message.content);
  eq(await run(1234), await run(1234), "same seed, same text");
  const texts = new Set();
  for (const s of [1, 2, 3, 4, 5]) texts.add(await run(s));
  assert(texts.size >= 2, "different seeds all gave the same text");
});

await test("stop strings cut the text and are not returned", async () => {
  const base = (await client.completions.create({ ...greedy, prompt: "Once upon a time", max_tokens: 24 })).choices[0].text;
  let stop = null;
  for (let k = 3; k + 3 <= base.length; k++) {
    const s = base.slice(k, k + 3);
    if (/^[\x21-\x7e]{3}$/.test(s)) { stop = s; break; }
  }
  assert(stop, `no usable stop string in ${JSON.stringify(base)}`);
  const cut = base.indexOf(stop);
  const r = await client.completions.create({ ...greedy, prompt: "Once upon a time", max_tokens: 24, stop: [stop, "\u0000never"] });
  eq(r.choices[0].finish_reason, "stop");
  eq(r.choices[0].text, base.slice(0, cut), `text before stop ${JSON.stringify(stop)}`);
  const c = await client.chat.completions.create({ ...greedy, messages: hello, max_tokens: 12, stop: greedyText.slice(4, 6) });
  eq(c.choices[0].message.content, greedyText.slice(0, greedyText.indexOf(greedyText.slice(4, 6))));
});

await test("logit_bias, min_tokens and penalties reach the sampler", async () => {
  // A +100 bias makes one token certain: greedy output repeats it.
  const id = reference.encode(" sea", { add_special_tokens: false })[0];
  const text = reference.decode([id]);
  const r = await client.completions.create({ ...greedy, prompt: "Hi", max_tokens: 4, logit_bias: { [id]: 100 } });
  eq(r.choices[0].text, text.repeat(4), "biased text");
  // A -100 bias on the greedy first token changes the first token.
  const base = await client.completions.create({ ...greedy, prompt: "Hi", max_tokens: 1, logprobs: 1 });
  const first = reference.encode(base.choices[0].text, { add_special_tokens: false })[0];
  const banned = await client.completions.create({ ...greedy, prompt: "Hi", max_tokens: 1, logit_bias: { [first]: -100 } });
  assert(banned.choices[0].text !== base.choices[0].text, "a -100 bias did not ban the greedy token");
  // Without ignore_eos, min_tokens holds EOS back: the reply is at least that long.
  const m = await client.completions.create({ model: MODEL_NAME, prompt: "Hi", temperature: 0, max_tokens: 20, min_tokens: 20 });
  eq(m.usage.completion_tokens, 20);
  const p = await client.completions.create({ ...greedy, prompt: "Hi", max_tokens: 16, frequency_penalty: 2, presence_penalty: 2, repetition_penalty: 1.3, top_k: 5, min_p: 0.05, top_p: 0.9 });
  eq(p.usage.completion_tokens, 16);
});

async function expectStatus(promise, status, contains) {
  try {
    await promise;
  } catch (e) {
    eq(e.status, status, `status (${e.message})`);
    if (contains) assert(String(e.message).includes(contains), `message ${JSON.stringify(e.message)} lacks ${contains}`);
    assert(e.error && typeof e.error.message === "string", "OpenAI error shape");
    return;
  }
  throw new Error(`expected HTTP ${status}, got success`);
}

await test("response_format json_schema: parsed output, streaming and not", async () => {
  const schema = { type: "object", properties: { name: { type: "string", maxLength: 10 }, age: { type: "integer" }, tags: { type: "array", items: { enum: ["a", "b"] }, maxItems: 3 } }, required: ["name", "age"], additionalProperties: false };
  const response_format = { type: "json_schema", json_schema: { name: "person", schema, strict: true } };
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ model: MODEL_NAME, messages: hello, response_format, temperature: 1, seed, max_tokens: 200 });
    eq(r.choices[0].finish_reason, "stop");
    const v = JSON.parse(r.choices[0].message.content);
    assert(typeof v.name === "string" && v.name.length <= 10 && Number.isInteger(v.age), JSON.stringify(v));
    assert(Object.keys(v).every((k) => ["name", "age", "tags"].includes(k)), JSON.stringify(v));
    const stream = await client.chat.completions.create({ model: MODEL_NAME, messages: hello, response_format, temperature: 1, seed, max_tokens: 200, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    eq(text, r.choices[0].message.content);  // same seed, same constrained sample
  }
  const o = await client.chat.completions.create({ model: MODEL_NAME, messages: hello, response_format: { type: "json_object" }, max_tokens: 8 });
  assert(o.choices[0].message.content.startsWith("{"), o.choices[0].message.content);
});

await test("guided_choice, guided_regex, guided_json and structured_outputs: streaming and not", async () => {
  const forms = [
    [{ guided_choice: ["red", "green", "blue"] }, (t) => ["red", "green", "blue"].includes(t)],
    [{ guided_regex: "[A-Z]{2}-\\d{3}" }, (t) => /^[A-Z]{2}-\d{3}$/.test(t)],
    [{ guided_json: { type: "object", properties: { n: { type: "integer", minimum: 1, maximum: 9 } }, required: ["n"], additionalProperties: false } },
     (t) => { const v = JSON.parse(t); return Number.isInteger(v.n) && v.n >= 1 && v.n <= 9; }],
    [{ structured_outputs: { choice: ["yes", "no"] } }, (t) => t === "yes" || t === "no"],
  ];
  for (const [extra, ok] of forms) {
    const r = await client.chat.completions.create({ model: MODEL_NAME, messages: hello, temperature: 1, seed: 4, max_tokens: 60, ...extra });
    eq(r.choices[0].finish_reason, "stop");
    assert(ok(r.choices[0].message.content), `${JSON.stringify(extra)}: ${r.choices[0].message.content}`);
    const stream = await client.chat.completions.create({ model: MODEL_NAME, messages: hello, temperature: 1, seed: 4, max_tokens: 60, stream: true, ...extra });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    eq(text, r.choices[0].message.content);
  }
  const c = await client.completions.create({ model: MODEL_NAME, prompt: "x", max_tokens: 20, guided_choice: ["alpha", "beta"] });
  assert(["alpha", "beta"].includes(c.choices[0].text), c.choices[0].text);
});

await test("errors: status codes and messages", async () => {
  await expectStatus(client.chat.completions.create({ model: MODEL_NAME, messages: hello, temperature: 5 }), 400, "temperature");
  await expectStatus(client.chat.completions.create({ model: "no-such-model", messages: hello }), 404, "no-such-model");
  await expectStatus(client.chat.completions.create({ model: MODEL_NAME, messages: [] }), 400, "messages");
  await expectStatus(client.chat.completions.create({ model: MODEL_NAME, messages: hello, max_tokens: 100000 }), 400, "256");
  await expectStatus(client.chat.completions.create({ model: MODEL_NAME, messages: hello, response_format: { type: "json_schema", json_schema: { name: "d", schema: { type: "integer", multipleOf: 3 } } } }), 400, "'multipleOf'");
  await expectStatus(client.chat.completions.create({ model: MODEL_NAME, messages: hello, guided_regex: "(a" }), 400, "missing ')'");
  await expectStatus(client.chat.completions.create({ model: MODEL_NAME, messages: hello, guided_grammar: "root ::= <tok>" }), 400, "token references");
  const tools = [{ type: "function", function: { name: "f", parameters: { type: "object" } } }];
  // ferrum-tiny's template has no tool-call syntax: tools (and so tool_choice required) are refused.
  await expectStatus(client.chat.completions.create({ model: MODEL_NAME, messages: hello, tools, tool_choice: "required" }), 400, "tool");
  await expectStatus(client.completions.create({ model: MODEL_NAME, prompt: "x", suffix: "y" }), 400, "suffix");
  await expectStatus(client.completions.create({ model: MODEL_NAME, prompt: [1, 2, 99999999] }), 400, "prompt");
  eq((await getJson("/v1/nothing")).status, 404);
  const r405 = await getJson("/v1/completions");
  eq(r405.status, 405);
  eq(r405.headers.get("allow"), "POST");
});

await test("tokenize and detokenize agree with the reference tokenizer", async () => {
  const text = "Hello world, ferrum!";
  const t = await postJson("/tokenize", { prompt: text });
  eq(t.status, 200);
  eq(t.body.tokens, reference.encode(text));
  eq(t.body.max_model_len, 256);
  const c = await postJson("/tokenize", { messages: hello });
  eq(c.body.tokens, referenceChatIds(hello));
  const d = await postJson("/detokenize", { tokens: reference.encode(text, { add_special_tokens: false }) });
  eq(d.body.prompt, text);
});

await test("metrics count tokens and latencies", async () => {
  assert((await metric("ferrum_prompt_tokens_total")) > 0, "prompt tokens");
  assert((await metric("ferrum_generation_tokens_total")) > 0, "generated tokens");
  assert((await metric("ferrum_time_to_first_token_seconds_count")) > 0, "ttft histogram");
  assert((await metric("ferrum_e2e_request_latency_seconds_count")) > 0, "e2e histogram");
  assert((await metric("ferrum_prefix_cache_hits_total")) > 0, "prefix cache hits");
  const health = await getJson("/health");
  eq(health.status, 200);
});

finish();
