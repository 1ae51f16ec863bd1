// Reference renderer for the chat-template golden tests: renders every fixture template with
// every conversation using @huggingface/jinja and writes the results as JSON.
// Usage: node render_chat_templates.mjs <fixtures/chat_templates dir> <output.json>
import { Template } from "@huggingface/jinja";
import fs from "node:fs";
import path from "node:path";

const [dir, outFile] = process.argv.slice(2);
const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
const convs = JSON.parse(fs.readFileSync(path.join(dir, "conversations.json"), "utf8"));

// strftime_now must see a fixed date so both renderers agree (the C++ side is given the same
// date): @huggingface/jinja's own strftime_now reads `new Date()`, so pin that.
const [year, month, day] = manifest.fixed_date.split("-").map(Number);
const RealDate = Date;
globalThis.Date = class extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(year, month - 1, day, 12, 0, 0);
    else super(...args);
  }
  static now() {
    return new RealDate(year, month - 1, day, 12, 0, 0).getTime();
  }
};

// Strings are UTF-16 in JS: indexing can split a surrogate pair, which JSON cannot carry to the
// C++ side; such halves become U+FFFD (toWellFormed needs Node 20; older nodes pass them on).
const wellFormed = (s) => (typeof s.toWellFormed === "function" ? s.toWellFormed() : s);

const results = {};
for (const t of manifest.templates) {
  const source = fs.readFileSync(path.join(dir, `${t.name}.jinja`), "utf8");
  results[t.name] = {};
  let template = null;
  let parseError = null;
  try {
    template = new Template(source);
  } catch (e) {
    parseError = String(e.message ?? e);
  }
  for (const c of convs.cases) {
    if (parseError) {
      results[t.name][c.name] = { error: parseError };
      continue;
    }
    // transformers passes tools=None and documents=None when the caller gives none.
    const context = {
      messages: structuredClone(c.messages),
      tools: c.use_tools ? structuredClone(convs.tools) : null,
      documents: null,
      add_generation_prompt: c.add_generation_prompt,
      bos_token: t.bos_token ?? undefined,
      eos_token: t.eos_token ?? undefined,
      ...(c.kwargs ?? {}),
    };
    if (context.bos_token === undefined) delete context.bos_token;
    if (context.eos_token === undefined) delete context.eos_token;
    try {
      results[t.name][c.name] = { text: wellFormed(template.render(context)) };
    } catch (e) {
      results[t.name][c.name] = { error: String(e.message ?? e) };
    }
  }
}
// Small templates exercising single language features, rendered with their own context.
const snippetsFile = path.join(dir, "snippets.json");
if (fs.existsSync(snippetsFile)) {
  results.__snippets__ = {};
  for (const s of JSON.parse(fs.readFileSync(snippetsFile, "utf8"))) {
    try {
      results.__snippets__[s.name] = { text: wellFormed(new Template(s.template).render(structuredClone(s.context))) };
    } catch (e) {
      results.__snippets__[s.name] = { error: String(e.message ?? e) };
    }
  }
}
fs.writeFileSync(outFile, JSON.stringify(results, null, 1));
