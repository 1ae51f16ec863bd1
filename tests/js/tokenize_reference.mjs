// Reference token ids from transformers.js (@lenml/tokenizers) for the C++ tokenizer parity
// test (tests/tokenizer/test_hf_parity.cpp).
//
//   node tokenize_reference.mjs CORPUS_JSON OUT_JSON [NAME]
//
// NAME limits the run to one tokenizer (each test process asks only for its own).
// Writes {"<name>": {"model_dir": ..., "patch": null | {...}, "cases": [{"ids": [...], "ids_no_special": [...],
// "decoded": "...", "decoded_skip_special": "..."}]}} with one case per corpus string.
//
// Divergences from Python transformers that this script corrects, so that the target stays
// Python's behaviour:
// - LlamaTokenizerFast / GemmaTokenizerFast rebuild the post-processor from add_bos_token /
//   add_eos_token (update_post_processor). transformers.js keeps tokenizer.json's, which for
//   DeepSeek V3 (ByteLevel only) drops the BOS. We hand it the template Python would build.
// - decode() runs with clean_up_tokenization_spaces = false: the C++ decode is the
//   `tokenizers` decode, which never cleans up spaces.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const NAMES = ["llama3_1", "qwen3", "llama2", "gemma3", "deepseek_v3"];

// Pipelines that none of the five ship, run over a real vocabulary by replacing parts of its
// tokenizer.json. The C++ test applies the same "patch" (written to the output).
const META = "\u2581";
// Added tokens of a package with some flags changed ({content: {flag: value}}).
function withAddedTokenFlags(base, flags) {
  const tokens = require(`@lenml/tokenizer-${base}/models/tokenizer.json`).added_tokens;
  return tokens.map((t) => ({ ...t, ...(flags[t.content] ?? {}) }));
}

const VARIANTS = {
  // Llama 2 converted with legacy=false (Mistral v0.3 style): Metaspace, prepend "first".
  // (transformers.js reads add_prefix_space, not prepend_scheme alone, and never splits on
  // the replacement, so split: true cannot be checked here; test_components.cpp does.)
  llama2_metaspace_first: ["llama2", {
    normalizer: null,
    pre_tokenizer: { type: "Metaspace", replacement: META, prepend_scheme: "first", split: false, add_prefix_space: true },
    decoder: { type: "Sequence", decoders: [
      { type: "Metaspace", replacement: META, prepend_scheme: "first", split: false, add_prefix_space: true },
      { type: "ByteFallback" }, { type: "Fuse" }] },
  }],
  // lstrip / rstrip on added tokens (transformers.js ignores single_word, so it stays off).
  qwen3_strip_flags: ["qwen3", {
    added_tokens: withAddedTokenFlags("qwen3", {
      "<|im_start|>": { rstrip: true },
      "<|im_end|>": { lstrip: true },
      "<|endoftext|>": { lstrip: true, rstrip: true },
    }),
  }],
  // GPT-2 style: ByteLevel with its own regex and a prefix space; lowercased.
  qwen3_gpt2_style: ["qwen3", {
    normalizer: { type: "Lowercase" },
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
  }],
  // NFKC + Strip, digits one by one, whitespace split. (Punctuation is left out: transformers.js
  // keeps runs of punctuation together where HF isolates each character.)
  qwen3_digits_whitespace: ["qwen3", {
    normalizer: { type: "Sequence", normalizers: [{ type: "NFKC" }, { type: "Strip", strip_left: true, strip_right: true }] },
    pre_tokenizer: { type: "Sequence", pretokenizers: [
      { type: "Digits", individual_digits: true },
      { type: "WhitespaceSplit" },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false }] },
  }],
};
const LLAMA_LIKE = new Set(["LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
  "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"]);

function tokenContent(t) {
  if (t == null) return null;
  return typeof t === "string" ? t : t.content;
}

// The TemplateProcessing transformers' update_post_processor() builds.
function pythonPostProcessor(tokenizerJSON, config) {
  if (!LLAMA_LIKE.has(config.tokenizer_class)) return undefined;
  const addBos = config.add_bos_token ?? true;
  const addEos = config.add_eos_token ?? false;
  const idOf = (content) => {
    const added = tokenizerJSON.added_tokens.find((t) => t.content === content);
    return added ? added.id : tokenizerJSON.model.vocab[content];
  };
  const single = [];
  const special = {};
  const addSpecial = (content) => {
    single.push({ SpecialToken: { id: content, type_id: 0 } });
    special[content] = { id: content, ids: [idOf(content)], tokens: [content] };
  };
  if (addBos) addSpecial(tokenContent(config.bos_token));
  single.push({ Sequence: { id: "A", type_id: 0 } });
  if (addEos) addSpecial(tokenContent(config.eos_token));
  return { type: "TemplateProcessing", single, pair: single, special_tokens: special };
}

async function main() {
  const [corpusPath, outPath, only] = process.argv.slice(2);
  if (!corpusPath || !outPath) throw new Error("usage: node tokenize_reference.mjs CORPUS_JSON OUT_JSON [NAME]");
  const strings = JSON.parse(fs.readFileSync(corpusPath, "utf8")).strings;
  const result = {};
  const runs = [...NAMES.map((n) => [n, n, null]), ...Object.entries(VARIANTS).map(([n, [b, p]]) => [n, b, p])];
  if (only && !runs.some(([name]) => name === only)) throw new Error(`unknown tokenizer ${only}`);
  for (const [name, base, patch] of runs) {
    if (only && name !== only) continue;
    const pkg = `@lenml/tokenizer-${base}`;
    const mod = await import(pkg);
    const modelDir = path.dirname(require.resolve(`${pkg}/models/tokenizer.json`));
    const post = pythonPostProcessor(mod.tokenizerJSON, mod.tokenizerConfig);
    const overrides = { ...(post ? { post_processor: post } : {}), ...(patch ?? {}) };
    const tok = mod.fromPreTrained({ tokenizerJSON: overrides });
    const opts = { clean_up_tokenization_spaces: false };
    // transformers.js refuses to decode an empty list; Python returns "".
    const decode = (ids, skip) => (ids.length ? tok.decode(ids, { ...opts, skip_special_tokens: skip }) : "");
    const cases = strings.map((s) => {
      const ids = tok.encode(s);
      const idsNoSpecial = tok.encode(s, { add_special_tokens: false });
      return {
        ids,
        ids_no_special: idsNoSpecial,
        decoded: decode(idsNoSpecial, false),
        decoded_skip_special: decode(ids, true),
      };
    });
    result[name] = { model_dir: modelDir, patch, cases };
  }
  fs.writeFileSync(outPath, JSON.stringify(result));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
