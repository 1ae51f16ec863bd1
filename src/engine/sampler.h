// Turns one sequence's logits row into its next token, as vLLM v1 does:
//   min_tokens mask (stop ids, EOS) + logit_bias -> repetition (HF: over prompt and output),
//   frequency and presence (over output) penalties -> greedy argmax, or
//   temperature -> min_p -> top_k -> top_p -> one draw from the sequence's own RNG.
// Each sequence owns its RNG (seeded from the request seed and its completion index) and
// draws exactly one number per sampled token, so a seeded request gives the same output
// whatever else is in the batch.
// Logprobs are those of the raw model distribution (log_softmax of the logits before any
// penalty, bias or temperature), vLLM's default ("raw_logprobs").
#pragma once
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "engine/engine.h"
#include "engine/sequence.h"

namespace ferrum {

// HF repetition penalty over `context` tokens (each distinct token once), then OpenAI
// frequency / presence penalties from output token counts.
void apply_penalties(std::span<float> logits, std::span<const int32_t> context,
                     const std::unordered_map<int32_t, int32_t>& output_counts,
                     const SamplingParams& params, std::vector<uint8_t>& seen_scratch);

// Raw-distribution logprob of `token` and the top_n most likely tokens (best first, ties by id).
void compute_logprobs(std::span<const float> logits, int32_t token, int32_t top_n,
                      TokenLogprob& out, std::vector<int32_t>& index_scratch);

// A uniform double in [0, 1) from 53 random bits.
inline double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

class Sampler {
 public:
  Sampler(int32_t vocab_size, std::vector<int32_t> eos_token_ids);

  // Picks seq's next token from its logits row (modified in place); appends a logprob entry
  // to seq.new_logprobs when the request asked for logprobs.
  int32_t sample(Sequence& seq, std::span<float> logits);

  // The filtering and draw step alone (after penalties), for tests.
  int32_t sample_filtered(std::span<float> logits, const SamplingParams& params, std::mt19937_64& rng);

  // The logits processing of `sample` alone (min_tokens mask, bias, penalties, grammar mask),
  // in place, for the position after seq's tokens followed by `proposed` (speculative
  // decoding: as if those were generated already).
  void process(const Sequence& seq, std::span<float> logits, std::span<const int32_t> proposed = {});
  // The distribution sample_filtered draws from, as probabilities over the vocabulary
  // (a point mass when greedy). `logits` are processed ones, and are modified.
  void distribution(std::span<float> logits, const SamplingParams& params, std::vector<float>& probs);

 private:
  int32_t prepare_draw(std::span<float> logits, const SamplingParams& params, double& total, bool& all_tokens);

  int32_t vocab_size_;
  std::vector<int32_t> eos_ids_;
  std::vector<int32_t> index_;    // candidate token ids
  std::vector<float> weight_;     // exp(logit - max) of the candidates
  std::vector<float> raw_;        // copy of the raw row when logprobs are wanted
  std::vector<uint8_t> seen_;     // repetition penalty marks
  std::vector<uint32_t> allowed_;  // structured output: the token mask (bits)
  std::vector<int32_t> context_;  // tokens + proposed ones (penalties under speculation)
  std::unordered_map<int32_t, int32_t> counts_;
};

}  // namespace ferrum
