// Reference token ids from transformers.js (@lenml/tokenizers) for the C++ tokenizer parity
// test (tests/tokenizer/test_hf_parity.cpp).
//
//   node tokenize_reference.mjs CORPUS_JSON OUT_JSON
//
// Writes {"<name>": {"model_dir": ..., "cases": [{"ids": [...], "ids_no_special": [...],
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
  const [corpusPath, outPath] = process.argv.slice(2);
  if (!corpusPath || !outPath) throw new Error("usage: node tokenize_reference.mjs CORPUS_JSON OUT_JSON");
  const strings = JSON.parse(fs.readFileSync(corpusPath, "utf8")).strings;
  const result = {};
  for (const name of NAMES) {
    const pkg = `@lenml/tokenizer-${name}`;
    const mod = await import(pkg);
    const modelDir = path.dirname(require.resolve(`${pkg}/models/tokenizer.json`));
    const post = pythonPostProcessor(mod.tokenizerJSON, mod.tokenizerConfig);
    const tok = mod.fromPreTrained(post ? { tokenizerJSON: { post_processor: post } } : undefined);
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
    result[name] = { model_dir: modelDir, cases };
  }
  fs.writeFileSync(outPath, JSON.stringify(result));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
