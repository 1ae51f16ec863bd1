// The engine's side of sampling on the device (backend/sampling.h): each sequence to sample
// becomes a SampleRow with its sparse logit edits, in the same order of operations as the host
// Sampler (min_tokens mask, logit_bias, repetition, frequency and presence penalties), and each
// result goes back into the sequence (its logprobs entry).
#pragma once
#include <cstdint>
#include <vector>

#include "backend/sampling.h"
#include "engine/sequence.h"

namespace ferrum {

class DeviceSamplingBuilder {
 public:
  DeviceSamplingBuilder(int32_t vocab_size, std::vector<int32_t> eos_token_ids);

  // Appends seq's row (and its edits) to batch.
  void add(const Sequence& seq, SampleBatch& batch);

  // Seq's token from row r of result; appends its logprobs entry when the request asked.
  static int32_t take(Sequence& seq, const SampleBatch& batch, const SampleResult& result, size_t r);

  // A sequence's random key from its request seed and completion index.
  static uint64_t key(uint64_t seed, int32_t index);

 private:
  int32_t vocab_size_;
  std::vector<int32_t> eos_ids_;
  std::vector<uint8_t> seen_;  // tokens already edited in the current phase
  std::vector<int32_t> marked_;
};

}  // namespace ferrum
