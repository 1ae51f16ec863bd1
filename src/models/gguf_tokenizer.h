// Tokenizers in GGUF metadata, both ways, as llama.cpp names them: tokenizer.ggml.model "gpt2"
// (byte-level BPE with merges and a pre-tokenizer named by tokenizer.ggml.pre) and "llama"
// (SentencePiece BPE: pieces with scores, byte fallback, a "▁" space prefix), with token
// types, special ids and chat templates.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "core/json.h"
#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

namespace ferrum {

class GgufWriter;

// The tokenizer a GGUF file's metadata describes, encoding as the model's tokenizer.json.
std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& g);
// Its chat templates (tokenizer.chat_template as "default", tokenizer.chat_template.NAME), and
// the special tokens a template sees (bos_token, eos_token).
std::map<std::string, std::string> gguf_chat_templates(const GgufFile& g);
ordered_json gguf_special_tokens(const GgufFile& g);

// Writes the tokenizer and chat template keys of a Hugging Face folder's tokenizer.json:
// byte-level BPE as "gpt2", BPE with byte fallback (Llama 2, Mistral) as "llama" with scores
// from the merge ranks. Fails for tokenizers GGUF cannot describe (an unnamed pre-tokenizer,
// WordPiece, Unigram).
void write_tokenizer_metadata(GgufWriter& w, const std::string& model_dir);

}  // namespace ferrum
