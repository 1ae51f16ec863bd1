// The token-budget scheduler (vLLM v1 style). Each sequence has num_computed_tokens and
// num_tokens; a step spends max_num_batched_tokens closing that gap: running sequences first
// (decodes and the rest of chunked prefills, oldest first), then prefill chunks of waiting ones,
// up to max_num_seqs. When blocks run out the newest running sequence is preempted (its blocks
// freed, recomputed later from the front of the waiting queue) and nothing new is admitted in
// that step.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "engine/block_manager.h"
#include "engine/sequence.h"

namespace ferrum {

struct SchedulerConfig {
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;
  // Speculative decoding: slots reserved after a decoding sequence's next token for the
  // tokens a drafter proposes (vLLM's num_lookahead_tokens), when a step speculates.
  int32_t num_lookahead_tokens = 0;
};

struct ScheduledSeq {
  Sequence* seq;
  int32_t num_new_tokens;      // known tokens computed in this step
  int32_t num_lookahead = 0;   // KV slots reserved past them for proposed tokens (<= K)
};

struct SchedulerOutput {
  std::vector<ScheduledSeq> scheduled;        // in batch order
  std::vector<Sequence*> preempted;           // moved back to waiting in this step
  // Sequences that can never run (they would not fit in the whole KV pool), with the reason.
  // They are out of the queues; the caller finishes them with FinishReason::Error.
  std::vector<std::pair<Sequence*, std::string>> failed;
  int32_t num_tokens = 0;          // lookahead slots included
  bool speculates = false;         // some sequence has lookahead slots
  bool empty() const { return scheduled.empty(); }
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, BlockManager& blocks);

  void add(Sequence* seq);       // to the back of the waiting queue
  void remove(Sequence* seq);    // finished or aborted: out of the queues, blocks freed
  void clear();                  // forgets every sequence (after an internal error; blocks untouched)
  // `speculate`: reserve lookahead slots for the decoding sequences that may speculate.
  SchedulerOutput schedule(bool speculate = false);
  // After the step was issued (its K/V are queued, in order, before any later step's): advances
  // num_computed_tokens of the sequences still running and offers their full blocks, as far as
  // their tokens are known, to the prefix cache.
  void on_step_done(const SchedulerOutput& out);

  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  const std::vector<Sequence*>& running() const { return running_; }
  const std::deque<Sequence*>& waiting() const { return waiting_; }
  uint64_t num_preemptions() const { return num_preemptions_; }

 private:
  void preempt(Sequence* seq, SchedulerOutput& out);
  bool fork_ready(const Sequence& seq) const;
  bool admit(Sequence* seq, int32_t& budget, SchedulerOutput& out);  // false: no room

  SchedulerConfig config_;
  BlockManager& blocks_;
  std::vector<Sequence*> running_;  // oldest first
  std::deque<Sequence*> waiting_;
  uint64_t num_preemptions_ = 0;
};

}  // namespace ferrum
