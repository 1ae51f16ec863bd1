// Speculative decoding's drafters: what proposes the tokens the target verifies
// (spec_decode.h). Both write Sequence::spec_draft (and a draft model its proposal
// distributions) for the sequences the scheduler gave lookahead slots.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "models/forward_batch.h"
#include "models/model.h"

namespace ferrum {

// Prompt lookup: the most recent earlier occurrence of the last n tokens of `tokens` (n from
// max_n down to min_n) and up to k of the tokens that followed it; empty when none occurs.
// `matched`, if given, is set to the n that matched (0: none).
std::vector<int32_t> propose_ngram(std::span<const int32_t> tokens, int32_t min_n, int32_t max_n, int32_t k,
                                   int32_t* matched = nullptr);

// A smaller model with the target's vocabulary proposes K tokens one at a time, sampled with
// the request's own parameters (so q is close to p), its distributions kept for verification.
// Its KV cache has as many blocks as the target's and is addressed by the same block tables:
// a block id holds both models' K/V of the same tokens, so the target's block manager
// allocates, rolls back and frees the draft's KV too. Sequence::draft_num_computed says how
// far the draft's K/V go; before its first pass of a step the draft catches up (the prompt,
// accepted tokens, the target's own tokens) in forwards of at most max_step_tokens. Blocks taken from the prefix cache or a sibling do not
// count as the draft's (it recomputes them into the same slots; the values are the same).
class DraftModelProposer {
 public:
  // max_step_tokens: the most tokens of one draft forward (a long catch-up, e.g. a prompt,
  // runs in chunks of it).
  DraftModelProposer(std::shared_ptr<Model> draft, int32_t num_blocks, int32_t block_size,
                     std::vector<int32_t> eos_token_ids, int32_t max_step_tokens);

  // Fills spec_draft / spec_draft_probs of every scheduled sequence with lookahead slots.
  void propose(const SchedulerOutput& out);

  Model& model() { return *model_; }

 private:
  struct Entry {
    Sequence* seq;
    int32_t want;  // proposals it can take (its lookahead slots)
  };
  void begin_batch(const std::vector<Entry*>& seqs);
  void add_tokens(const Sequence& seq, int32_t start, int32_t end);
  void catch_up(std::vector<Entry>& entries);
  void take_rows(std::span<float> logits, const std::vector<Entry*>& rows);

  std::shared_ptr<Model> model_;
  std::unique_ptr<KvCache> cache_;
  int32_t block_size_;
  int32_t vocab_size_;
  int32_t max_step_tokens_;
  Sampler sampler_;
  ForwardBatch batch_;
  std::vector<float> probs_;
};

}  // namespace ferrum
