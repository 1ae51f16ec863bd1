// Reads tokenizer.json in one SAX pass. The BPE vocabulary and merges (hundreds of thousands
// of entries) go straight into flat vectors; everything else becomes an ordinary json DOM.
// Building the DOM for the vocabulary too would double the load time of a large tokenizer.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"

namespace ferrum::tok {

using BpeVocab = std::vector<std::pair<std::string, int64_t>>;
using BpeMerges = std::vector<std::pair<std::string, std::string>>;

struct TokenizerJson {
  json doc;  // the whole file, except that model.vocab / model.merges are null when captured
  BpeVocab vocab;
  BpeMerges merges;
  bool has_vocab = false, has_merges = false;
};

// Throws ferrum::Error naming `source` when the text is not valid JSON.
TokenizerJson parse_tokenizer_json(const std::string& text, const std::string& source);

// Splits a merge written as "a b" (at the first space), or fails.
std::pair<std::string, std::string> split_merge(std::string_view merge);

}  // namespace ferrum::tok
