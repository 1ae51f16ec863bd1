// One completion's structured-output constraint: a grammar matcher advanced with each sampled
// token, and the mask of tokens allowed next. EOS is allowed only when the grammar accepts.
//
// Reasoning models: with `start_after` (e.g. "</think>") the output is free until that text
// appears; the bytes after it in the same token (white space skipped) start the grammar. A
// token that would complete the marker is allowed only when its rest continues the grammar.
// EOS is not allowed before the marker: the structured part must follow.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "structured/grammar.h"
#include "structured/token_vocab.h"

namespace ferrum::structured {

class TokenConstraint {
 public:
  TokenConstraint(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocab> vocab, std::string start_after = {})
      : matcher_(std::move(grammar)), vocab_(std::move(vocab)), marker_(std::move(start_after)), started_(marker_.empty()) {}

  // The tokens allowed next among ids [0, n), as bits (TokenVocab::Bitmask's layout) in
  // `bits`, TokenVocab::words_for(n) words: tokens whose bytes continue a valid prefix, and
  // `eos_ids` when allow_eos and the output is complete; never ids outside the tokenizer.
  void allowed(std::span<uint32_t> bits, size_t n, std::span<const int32_t> eos_ids, bool allow_eos) const;

  // Sets the logits of tokens not allowed() to -inf. Throws ferrum::Error when no token at
  // all is left (the vocabulary cannot continue the grammar).
  void apply(std::span<float> logits, std::span<const int32_t> eos_ids, bool allow_eos,
             std::vector<uint32_t>& scratch) const;

  // Advances with a sampled token's bytes; false (state unchanged) if they are not allowed.
  bool advance(int32_t token);

  bool started() const { return started_; }
  bool accepts() const { return started_ && matcher_.accepts(); }
  // Complete: accepted and nothing more can follow; the completion stops here.
  bool complete() const { return started_ && matcher_.accepts() && !matcher_.can_continue(); }

 private:
  // Before the marker: whether token bytes b are allowed, and (when they complete the marker)
  // the matcher after their rest.
  bool gated_step(const std::string& b, GrammarMatcher& m, bool& starts) const;

  GrammarMatcher matcher_;
  std::shared_ptr<const TokenVocab> vocab_;
  std::string marker_;
  bool started_;
  std::string tail_;  // before the marker: the last marker_.size() - 1 output bytes
};

}  // namespace ferrum::structured
