// Speculative decoding: the verification of proposed tokens (Leviathan et al. 2023; Chen et
// al. 2023). The target has scored a sequence's last known token and its K proposals in one
// forward pass: row j is the target's distribution after proposal j. Proposal j + 1 is
// accepted with probability min(1, p(d) / q(d)); the first rejection is replaced by a draw from
// the residual max(0, p - q) renormalized; when all K are accepted, row K gives one more token.
// The emitted tokens are then distributed exactly as the target's own sampler would draw them
// one at a time, whatever q is. A point proposal (n-gram lookup: q = 1 on d) is verified by
// the target's own draw, which is the same rule coupled to the plain sampler. Here p is the host Sampler's distribution for that position
// (mask, bias, penalties counting the proposals before it, temperature, min_p, top_k, top_p),
// so every sampling parameter is honoured; greedy gives the target's argmax ids.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "engine/engine.h"
#include "engine/sampler.h"
#include "engine/sequence.h"

namespace ferrum {

struct SpecVerdict {
  std::vector<int32_t> tokens;          // the accepted proposals, then the target's own token
  std::vector<TokenLogprob> logprobs;   // one per token when the request wants logprobs
  int32_t num_accepted = 0;             // proposals accepted (tokens.size() - 1)
};

class SpecVerifier {
 public:
  SpecVerifier(int32_t vocab_size, std::vector<int32_t> eos_token_ids);

  // `rows`: the target's raw logits, [1 + seq.spec_draft.size(), vocab]. The proposals' own
  // distributions are seq.spec_draft_probs ([K, vocab]; empty: each a point mass). Draws from
  // seq.rng.
  void verify(Sequence& seq, std::span<const float> rows, SpecVerdict& verdict);

 private:
  int32_t draw(std::span<const float> weights, std::mt19937_64& rng) const;

  int32_t vocab_size_;
  Sampler sampler_;
  std::vector<float> row_, probs_, residual_;
  std::vector<int32_t> index_scratch_;
};

}  // namespace ferrum
