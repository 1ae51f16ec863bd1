// The engine's speculative decoding (EngineOptions::speculative): the drafter (n-gram lookup or
// a draft model), the switch by concurrency, when to propose at all where steps overlap, and
// each sequence's verification with the rollback of its rejected proposals' KV. The engine
// owns one while speculation is configured.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
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
  // Checks the options and the draft model against the target (throws Error). `model_samples`:
  // the engine picks tokens with the model's own sampler (device sampling); then n-gram
  // proposals are verified by its picks, and steps that propose nothing stay on that path.
  // A draft model's proposals are verified on the host (the host Sampler gives p exactly).
  Speculation(const SpeculativeOptions& options, const Model& target, int32_t max_model_len, int32_t num_blocks,
              int32_t block_size, int32_t max_num_batched_tokens, bool model_samples);

  // Speculation pays while few sequences run: above options.max_batch running and waiting
  // ones, steps decode one token at a time. Each switch is logged.
  bool should_speculate(size_t active);
  // Device sampling: whether the next step should propose, which costs the overlap with the
  // step in flight (proposals follow each sequence's newest token, so that step is collected
  // first). A draft model and --spec-ngram-always: every step should_speculate allows.
  // Adaptive n-gram lookup: when the lookup on the tokens known now (one behind each token in
  // flight) finds proposals the policy would verify; tries that verify nothing back off.
  // Called once per step, before it is scheduled.
  bool wants_proposals(const std::vector<Sequence*>& running, size_t active);
  // Proposes tokens for the sequences given lookahead slots (each with its newest token
  // known). Proposals are optional: if the draft model fails, this step verifies none (and the
  // draft recomputes its KV later); with adaptive n-gram lookup, only those expected to pay
  // are kept (spec_policy.h).
  void propose(const SchedulerOutput& out);
  // Whether proposals are verified from the target's logits rows on the host (a draft model's,
  // whose own distributions take part), rather than by the model's picks.
  bool verifies_on_host() const { return drafter_ != nullptr || !model_samples_; }
  static bool has_proposals(const SchedulerOutput& out);
  // A step that proposes nothing after all runs as a plain one: its lookahead slots go back.
  static void release_lookahead(SchedulerOutput& out, BlockManager& blocks);

  // After every step of the host path: its wall time from scheduling to the last token picked
  // (the n-gram policy's cost measure on host-sampling engines).
  void step_done(const SchedulerOutput& out, double ms);
  // Device sampling: after a step's tokens are taken; `rows` proposals were verified. Its
  // cost for the policy is the time since the step before delivered, which is what a step
  // costs when steps overlap.
  void step_delivered(const SchedulerOutput& out, int32_t rows);

  // Verifies seq's proposals against the target's rows [1 + K, vocab] and appends the verified
  // tokens through `output` one by one (a stop ends the run early); the accepted proposals'
  // K/V count as computed. Returns the tokens appended.
  size_t verify(Sequence& seq, std::span<float> rows, OutputProcessor& output, BlockManager& blocks);
  // The same for point proposals verified on the device: pick(j) is the model's pick from row
  // j (after j proposals, drawn as plain decoding would draw there; taking it records its
  // logprobs), for the 1 + K rows. The target's own draw accepts a proposal it equals
  // (spec_decode.h), so the tokens are exactly plain decoding's.
  size_t accept_picks(Sequence& seq, size_t rows, const std::function<int32_t(size_t)>& pick, OutputProcessor& output,
                      BlockManager& blocks);
  // After a speculating step, whatever happened to seq: blocks past its computed tokens go back
  // to the pool, the draft's K/V never exceed them, and the proposals are dropped.
  static void roll_back(Sequence& seq, bool had_lookahead, BlockManager& blocks);

  uint64_t drafts() const { return drafts_; }
  uint64_t draft_tokens() const { return draft_tokens_; }
  uint64_t accepted_tokens() const { return accepted_tokens_; }

 private:
  void propose_ngram_step(const SchedulerOutput& out);
  bool lookup_behind(const std::vector<Sequence*>& running);
  void note_try(bool verified);
  void record(const SchedulerOutput& out, int32_t rows, double ms);
  void count_verification(size_t proposals, int32_t accepted);
  static void commit_accepted(Sequence& seq, int32_t appended_proposals, BlockManager& blocks);

  SpeculativeOptions options_;
  bool model_samples_ = false;
  bool speculating_ = false;  // the last step's choice (logged when it changes)
  SpecVerifier verifier_;
  SpecVerdict verdict_;

  std::unique_ptr<DraftModelProposer> drafter_;  // null with n-gram lookup
  SpecPolicy policy_;                            // adaptive n-gram lookup
  int32_t step_rows_ = 0;                        // proposals verified by the step in progress
  std::vector<std::vector<double>> gains_;       // per scheduled sequence with a proposal
  std::vector<Sequence*> proposing_;
  std::vector<int32_t> lookup_;                  // lookup_behind's proposal
  int32_t failed_tries_ = 0, skip_tries_ = 0;    // wants_proposals' backoff
  std::chrono::steady_clock::time_point last_delivery_{};
  uint64_t drafts_ = 0, draft_tokens_ = 0, accepted_tokens_ = 0;
};

}  // namespace ferrum
