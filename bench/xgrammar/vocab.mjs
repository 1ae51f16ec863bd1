// A tokenizer.json's vocabulary in the form xgrammar's TokenizerInfo takes: the encoded
// (byte-level) token strings by id. Special added tokens are given as "", which xgrammar
// treats as special (never allowed), matching ferrum's vocabulary_bytes(), which gives them
// no bytes; non-special added tokens (Qwen3's <think>, <tool_call>, ...) stay plain text in
// both. The stop token is tokenizer_config.json's eos_token.
import { readFileSync } from "node:fs";

export function loadVocab(modelDir) {
  const tok = JSON.parse(readFileSync(`${modelDir}/tokenizer.json`, "utf8"));
  const config = JSON.parse(readFileSync(`${modelDir}/tokenizer_config.json`, "utf8"));
  let size = 0;
  for (const id of Object.values(tok.model.vocab)) size = Math.max(size, id + 1);
  for (const a of tok.added_tokens) size = Math.max(size, a.id + 1);
  const encoded = new Array(size).fill("");
  for (const [piece, id] of Object.entries(tok.model.vocab)) encoded[id] = piece;
  const special = new Set();
  for (const a of tok.added_tokens) {
    encoded[a.id] = a.special ? "" : a.content;
    if (a.special) special.add(a.id);
  }
  const eos = typeof config.eos_token === "string" ? config.eos_token : config.eos_token?.content;
  const stopIds = tok.added_tokens.filter((a) => a.content === eos).map((a) => a.id);
  const decoder = tok.decoder?.type === "Sequence" ? tok.decoder.decoders.map((d) => d.type) : [tok.decoder?.type];
  const vocabType = decoder.includes("ByteLevel") ? "byte_level" : decoder.includes("ByteFallback") ? "byte_fallback" : "raw";
  return { encoded, special, stopIds, vocabType };
}
