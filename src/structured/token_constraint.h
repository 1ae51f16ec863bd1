// One completion's structured-output constraint: a grammar matcher advanced with each sampled
// token, and the mask of tokens allowed next. EOS is allowed only when the grammar accepts.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "structured/grammar.h"
#include "structured/token_vocab.h"

namespace ferrum::structured {

class TokenConstraint {
 public:
  TokenConstraint(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenVocab> vocab)
      : matcher_(std::move(grammar)), vocab_(std::move(vocab)) {}

  // Sets disallowed logits to -inf: tokens whose bytes do not continue a valid prefix, ids
  // outside the tokenizer, and `eos_ids` unless the output is complete. Throws ferrum::Error
  // when no token at all is left (the vocabulary cannot continue the grammar).
  void apply(std::span<float> logits, std::span<const int32_t> eos_ids, bool allow_eos,
             std::vector<uint8_t>& scratch) const;

  // Advances with a sampled token's bytes; false (state unchanged) if they are not allowed.
  bool advance(int32_t token);

  bool accepts() const { return matcher_.accepts(); }
  // Complete: accepted and nothing more can follow; the completion stops here.
  bool complete() const { return matcher_.accepts() && !matcher_.can_continue(); }

 private:
  GrammarMatcher matcher_;
  std::shared_ptr<const TokenVocab> vocab_;
};

}  // namespace ferrum::structured
