// The BPE model of tokenizer.json ("model": {"type": "BPE"}): byte-level (GPT-2, Llama 3,
// Qwen, DeepSeek) and SentencePiece-style with byte fallback (Llama 2, Mistral, Gemma).
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/json.h"
#include "tokenizer/pair_map.h"
#include "tokenizer/tokenizer_json.h"

namespace ferrum::tok {

// Lets string-keyed maps be searched with a string_view, without building a std::string.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // spec: the "model" object; its "vocab" / "merges" are read from it when not given apart
  // (parse_tokenizer_json collects them without building a DOM).
  explicit BpeModel(const json& spec);
  BpeModel(const json& spec, BpeVocab vocab, BpeMerges merges);

  // Appends the ids of one pre-tokenized word to out.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // Empty when id is not in the model's vocabulary.
  const std::string* id_to_token(int32_t id) const;
  int32_t vocab_size() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void load_vocab(BpeVocab vocab);
  void load_merges(const BpeMerges& merges);
  // The initial symbols of a word: one per character, byte fallback / unk for unknown ones.
  void initial_symbols(std::string_view word, std::vector<int32_t>& ids) const;
  void merge(std::vector<int32_t>& ids) const;

  StringMap<int32_t> vocab_;
  // Single-code-point tokens, the starting symbols of most words (no prefix/suffix models).
  std::unordered_map<char32_t, int32_t> char_ids_;
  std::vector<std::string> id_to_token_;
  PairMap merges_;
  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_, end_of_word_suffix_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  int32_t byte_ids_[256];  // "<0xXX>" tokens for byte fallback, -1 where absent

  // Word -> ids cache (as HF's); guarded because encode() may run on several threads.
  mutable std::mutex cache_mutex_;
  mutable StringMap<std::vector<int32_t>> cache_;
};

}  // namespace ferrum::tok
