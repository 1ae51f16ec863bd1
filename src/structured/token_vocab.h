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

  // A set of token ids as bits: bit id % 32 of word id / 32 (the layout the samplers read).
  using Bitmask = std::vector<uint32_t>;
  static size_t words_for(size_t tokens) { return (tokens + 31) / 32; }

  // The tokens whose bytes keep the matcher's input a valid prefix (tokens without bytes are
  // never allowed), words_for(size()) words. Masks of recent states are cached and shared:
  // inside a JSON string or a repetition the state recurs token after token, across the
  // requests of one schema too, and the walk there (most of the vocabulary allowed) is the
  // slow case.
  std::shared_ptr<const Bitmask> bitmask(const GrammarMatcher& matcher) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, uint32_t>> children;  // byte -> node, sorted by byte
    std::vector<int32_t> tokens;                         // tokens whose bytes end here
  };
  struct StateTable;  // the matcher states one walk meets, and their transitions
  void walk(uint32_t node, uint32_t state, StateTable& table, Bitmask& allowed) const;

  std::vector<std::string> bytes_;
  std::vector<Node> nodes_;  // nodes_[0] is the root (the empty prefix)

  // The mask cache: (grammar, state key) -> mask. The entry holds its grammar, so that a
  // grammar freed and another allocated at its address cannot hit a stale mask.
  struct CachedMask {
    std::shared_ptr<const Grammar> grammar;
    std::shared_ptr<const Bitmask> mask;
  };
  // ~19 KB each for a 150k vocabulary: room for the states of a few schemas served at once.
  static constexpr size_t kMaskCacheEntries = 1024;
  struct MaskCache {
    std::mutex mu;
    std::unordered_map<std::string, CachedMask> masks;
  };
  std::unique_ptr<MaskCache> cache_ = std::make_unique<MaskCache>();  // a pointer: TokenVocab stays movable
};

}  // namespace ferrum::structured
