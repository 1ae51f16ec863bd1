// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): split normalized text into words.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/json.h"

namespace ferrum::tok {

struct PreToken {
  std::string text;
  bool at_origin = false;  // starts at offset 0 of the original input (Metaspace "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `words` by its refinement; empty words are dropped, as HF does.
  virtual void pre_tokenize(std::vector<PreToken>& words) const = 0;
};

// Null for a JSON null. Throws ferrum::Error on an unsupported type, naming it.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& spec);

// Maps every byte of text to its GPT-2 printable code point (the ByteLevel alphabet).
std::string byte_level_encode(std::string_view text);

}  // namespace ferrum::tok
