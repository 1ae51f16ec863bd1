// The engine's side of sampling on the device (backend/sampling.h): each sequence to sample
// becomes a SampleRow with its sparse logit edits, in the same order of operations as the host
// Sampler (min_tokens mask, logit_bias, repetition, frequency and presence penalties), and each
// result goes back into the sequence (its logprobs entry).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/sampling.h"
#include "core/thread_pool.h"
#include "engine/sequence.h"

namespace ferrum {

class DeviceSamplingBuilder {
 public:
  DeviceSamplingBuilder(int32_t vocab_size, std::vector<int32_t> eos_token_ids);

  // Appends seq's row (and its edits) to batch. A row with a grammar names its token mask,
  // which fill_masks() computes: its bits depend on every token sampled before, so by then
  // the sequence may have no token on the way. `proposed`: speculative decoding's row after
  // those proposals, drawn as if they had been generated (the draw that follows them, their
  // penalties and min_tokens), so that it picks what plain decoding would there.
  void add(const Sequence& seq, SampleBatch& batch, std::span<const int32_t> proposed = {});
  // Computes the token masks of the rows added since the last call (none: nothing to do).
  // Called once the step's forward is queued: the host works while the device runs it.
  void fill_masks(SampleBatch& batch);
  bool has_masks() const { return !masked_.empty(); }

  // Seq's token from row r of result; appends its logprobs entry when the request asked.
  static int32_t take(Sequence& seq, const SampleBatch& batch, const SampleResult& result, size_t r);

  // A sequence's random key from its request seed and completion index.
  static uint64_t key(uint64_t seed, int32_t index);

 private:
  int32_t vocab_size_;
  std::vector<int32_t> eos_ids_;
  std::vector<uint8_t> seen_;  // tokens already edited in the current phase
  std::vector<int32_t> marked_;
  std::vector<const Sequence*> masked_;  // rows added with a grammar, in mask order
  std::unique_ptr<ThreadPool> pool_;     // for masks of many rows
};

}  // namespace ferrum
