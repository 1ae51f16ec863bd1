// Added tokens (tokenizer.json "added_tokens"): matched in the text before the model runs,
// leftmost-longest, honouring single_word / lstrip / rstrip, in two passes as HF does (tokens
// with normalized=false on the raw text, the others on the normalized text).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ferrum::tok {

class Normalizer;

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

// A piece of text [start, end): an added token (id >= 0) or text for the model (id == -1).
struct TextPiece {
  size_t start, end;
  int32_t id;
};

class AddedVocabulary {
 public:
  AddedVocabulary();
  ~AddedVocabulary();
  void add(AddedToken token);
  // Builds the matchers; normalized tokens are matched in their normalized form.
  void build(const Normalizer* normalizer);

  // Splits text around the tokens of one pass (normalized == false: raw-text pass).
  std::vector<TextPiece> split(std::string_view text, bool normalized) const;

  const AddedToken* find(std::string_view content) const;
  const AddedToken* find(int32_t id) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  class Trie;
  std::vector<AddedToken> tokens_;
  std::unordered_map<std::string, size_t> by_content_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unique_ptr<Trie> raw_trie_, normalized_trie_;
};

}  // namespace ferrum::tok
