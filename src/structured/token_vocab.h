// A tokenizer's vocabulary as byte strings, in a trie, for token masks: the tokens whose
// bytes the grammar matcher accepts from its current state. The trie walk shares the work of
// common prefixes and prunes a whole subtree as soon as its prefix is rejected.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "structured/grammar.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::structured {

// The raw bytes of each token: byte-level BPE strings (GPT-2's byte-to-unicode alphabet,
// detected by the vocabulary holding "Ġ") mapped back to bytes, SentencePiece pieces with
// "▁" as a space and "<0xNN>" byte tokens. Special tokens have none (empty string).
std::vector<std::string> vocabulary_bytes(const Tokenizer& tokenizer);

class TokenVocab {
 public:
  explicit TokenVocab(std::vector<std::string> token_bytes);
  static TokenVocab from_tokenizer(const Tokenizer& tokenizer) { return TokenVocab(vocabulary_bytes(tokenizer)); }

  size_t size() const { return bytes_.size(); }
  const std::string& bytes(int32_t id) const { return bytes_[static_cast<size_t>(id)]; }

  // allowed[id] = 1 for each token with bytes that keeps the matcher's input a valid prefix,
  // else 0 (tokens without bytes are always 0). allowed is resized to size(). Masks of
  // recent states are cached: inside a JSON string or a repetition the state recurs token
  // after token, and the walk there (most of the vocabulary allowed) is the slow case.
  void mask(const GrammarMatcher& matcher, std::vector<uint8_t>& allowed) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, uint32_t>> children;  // byte -> node, sorted by byte
    std::vector<int32_t> tokens;                         // tokens whose bytes end here
  };
  void walk(uint32_t node, const GrammarMatcher& matcher, std::vector<uint8_t>& allowed) const;

  std::vector<std::string> bytes_;
  std::vector<Node> nodes_;  // nodes_[0] is the root (the empty prefix)

  // The mask cache: (grammar, state key) -> mask. The entry holds its grammar, so that a
  // grammar freed and another allocated at its address cannot hit a stale mask.
  struct CachedMask {
    std::shared_ptr<const Grammar> grammar;
    std::vector<uint8_t> mask;
  };
  static constexpr size_t kMaskCacheEntries = 64;  // ~150 KB each for a 150k vocabulary
  struct MaskCache {
    std::mutex mu;
    std::unordered_map<std::string, CachedMask> masks;
  };
  std::unique_ptr<MaskCache> cache_ = std::make_unique<MaskCache>();  // a pointer: TokenVocab stays movable
};

}  // namespace ferrum::structured
