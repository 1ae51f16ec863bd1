#include "engine/spec_decode.h"

#include <algorithm>

#include "core/error.h"

namespace ferrum {

SpecVerifier::SpecVerifier(int32_t vocab_size, std::vector<int32_t> eos_token_ids)
    : vocab_size_(vocab_size), sampler_(vocab_size, std::move(eos_token_ids)) {}

// One draw from unnormalized weights, in token order.
int32_t SpecVerifier::draw(std::span<const float> weights, std::mt19937_64& rng) const {
  double total = 0.0;
  for (float w : weights) total += w;
  const double target = uniform01(rng) * total;
  double acc = 0.0;
  int32_t last = 0;
  for (int32_t i = 0; i < static_cast<int32_t>(weights.size()); ++i) {
    if (weights[i] <= 0.0f) continue;
    acc += weights[i];
    last = i;
    if (target < acc) return i;
  }
  return last;  // rounding at the very top of the range
}

void SpecVerifier::verify(Sequence& seq, std::span<const float> rows, SpecVerdict& v) {
  const SamplingParams& p = *seq.params;
  const size_t vocab = static_cast<size_t>(vocab_size_);
  const std::span<const int32_t> draft = seq.spec_draft;
  const int32_t k = static_cast<int32_t>(draft.size());
  FERRUM_CHECK(rows.size() == (draft.size() + 1) * vocab, "verify: {} logits for {} proposals", rows.size(), k);
  const bool point_proposals = seq.spec_draft_probs.empty();
  FERRUM_CHECK(point_proposals || seq.spec_draft_probs.size() == draft.size() * vocab,
               "verify: proposal distributions of the wrong size");
  v.tokens.clear();
  v.logprobs.clear();
  v.num_accepted = 0;

  auto emit = [&](int32_t j, int32_t token) {
    v.tokens.push_back(token);
    if (p.logprobs) {
      v.logprobs.emplace_back();
      compute_logprobs(rows.subspan(j * vocab, vocab), token, *p.logprobs, v.logprobs.back(), index_scratch_);
    }
  };

  for (int32_t j = 0; j <= k; ++j) {
    row_.assign(rows.begin() + j * vocab, rows.begin() + (j + 1) * vocab);
    sampler_.process(seq, row_, draft.first(j));
    if (j == k || point_proposals) {
      // The target's own draw, as the plain sampler makes it (after every proposal accepted,
      // or for a point proposal d). For d this is the standard rule coupled: d is accepted
      // with probability p(d) = min(1, p(d) / 1), and a rejection's token is p without d,
      // which is the residual max(0, p - 1_d) renormalized. So a sequence's tokens, and its
      // RNG, are the same with and without n-gram speculation (spec_policy.h relies on it).
      const int32_t token = sampler_.sample_filtered(row_, p, seq.rng);
      emit(j, token);
      if (j == k || token != draft[j]) return;
      ++v.num_accepted;
      continue;
    }
    sampler_.distribution(row_, p, probs_);
    const int32_t d = draft[j];
    const float q_d = seq.spec_draft_probs[j * vocab + d];
    const float p_d = probs_[d];
    // Accept with probability min(1, p/q); no draw is needed when that is 1 (or 0).
    bool accept = p_d >= q_d;
    if (!accept && p_d > 0.0f) accept = uniform01(seq.rng) * q_d < p_d;
    if (accept) {
      emit(j, d);
      ++v.num_accepted;
      continue;
    }
    // Rejected: the residual max(0, p - q), renormalized.
    residual_.resize(vocab);
    double mass = 0.0;
    for (size_t t = 0; t < vocab; ++t) {
      residual_[t] = std::max(0.0f, probs_[t] - seq.spec_draft_probs[j * vocab + t]);
      mass += residual_[t];
    }
    // No residual mass means p == q up to rounding (a rejection had probability ~0): p itself.
    emit(j, draw(mass > 0.0 ? std::span<const float>(residual_) : std::span<const float>(probs_), seq.rng));
    return;
  }
}

}  // namespace ferrum
