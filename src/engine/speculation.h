// The engine's speculative decoding (EngineOptions::speculative): the drafter (n-gram lookup or
// a draft model), the switch by concurrency, and each sequence's verification with the rollback
// of its rejected proposals' KV. The engine owns one while speculation is configured.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "engine/block_manager.h"
#include "engine/engine.h"
#include "engine/output_processor.h"
#include "engine/scheduler.h"
#include "engine/spec_decode.h"
#include "engine/spec_drafter.h"
#include "engine/spec_policy.h"
#include "models/model.h"

namespace ferrum {

class Speculation {
 public:
  // Checks the options and the draft model against the target (throws Error). Verification
  // needs the target's logits rows on the host (the host Sampler gives p exactly).
  Speculation(const SpeculativeOptions& options, const Model& target, int32_t max_model_len, int32_t num_blocks,
              int32_t block_size, int32_t max_num_batched_tokens);

  // Speculation pays while few sequences run: above options.max_batch running and waiting
  // ones, steps decode one token at a time. Each switch is logged.
  bool should_speculate(size_t active);
  // Proposes tokens for the sequences given lookahead slots. Proposals are optional: if the
  // draft model fails, this step verifies none (and the draft recomputes its KV later); with
  // adaptive n-gram lookup, only those expected to pay are kept (spec_policy.h).
  void propose(const SchedulerOutput& out);
  // After every step of the host path: its wall time from scheduling to the last token picked
  // (the n-gram policy's cost measure).
  void step_done(const SchedulerOutput& out, double ms);
  // Verifies seq's proposals against the target's rows [1 + K, vocab] and appends the verified
  // tokens through `output` one by one (a stop ends the run early); the accepted proposals'
  // K/V count as computed. Returns the tokens appended.
  size_t verify(Sequence& seq, std::span<float> rows, OutputProcessor& output, BlockManager& blocks);
  // After a speculating step, whatever happened to seq: blocks past its computed tokens go back
  // to the pool, the draft's K/V never exceed them, and the proposals are dropped.
  static void roll_back(Sequence& seq, bool had_lookahead, BlockManager& blocks);

  uint64_t drafts() const { return drafts_; }
  uint64_t draft_tokens() const { return draft_tokens_; }
  uint64_t accepted_tokens() const { return accepted_tokens_; }

 private:
  SpeculativeOptions options_;
  bool speculating_ = false;  // the last step's choice (logged when it changes)
  SpecVerifier verifier_;
  SpecVerdict verdict_;
  void propose_ngram_step(const SchedulerOutput& out);

  std::unique_ptr<DraftModelProposer> drafter_;  // null with n-gram lookup
  SpecPolicy policy_;                            // adaptive n-gram lookup
  int32_t step_rows_ = 0;                        // proposals verified by the step in progress
  std::vector<std::vector<double>> gains_;       // per scheduled sequence with a proposal
  std::vector<Sequence*> proposing_;
  uint64_t drafts_ = 0, draft_tokens_ = 0, accepted_tokens_ = 0;
};

}  // namespace ferrum
