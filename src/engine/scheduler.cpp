#include "engine/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace ferrum {

Scheduler::Scheduler(const SchedulerConfig& config, BlockManager& blocks)
    : config_(config), blocks_(blocks) {
  FERRUM_CHECK(config.max_num_seqs > 0 && config.max_num_batched_tokens > 0,
               "scheduler needs max_num_seqs > 0 and max_num_batched_tokens > 0 (got {}, {})",
               config.max_num_seqs, config.max_num_batched_tokens);
}

void Scheduler::add(Sequence* seq) {
  seq->status = SequenceStatus::Waiting;
  waiting_.push_back(seq);
}

void Scheduler::remove(Sequence* seq) {
  if (auto it = std::find(running_.begin(), running_.end(), seq); it != running_.end())
    running_.erase(it);
  if (auto it = std::find(waiting_.begin(), waiting_.end(), seq); it != waiting_.end())
    waiting_.erase(it);
  blocks_.cache_full_blocks(*seq);  // blocks its last steps filled stay findable
  blocks_.free(*seq);
  seq->status = SequenceStatus::Finished;
}

void Scheduler::clear() {
  running_.clear();
  waiting_.clear();
}

void Scheduler::preempt(Sequence* seq, SchedulerOutput& out) {
  FERRUM_CHECK(!running_.empty() && running_.back() == seq, "preempt: not the newest running");
  running_.pop_back();
  blocks_.free(*seq);  // recompute later; its full blocks stay findable in the prefix cache
  seq->status = SequenceStatus::Waiting;
  waiting_.push_front(seq);
  out.preempted.push_back(seq);
  ++num_preemptions_;
}

// A completion forked from a sibling (n > 1) waits until the sibling's prompt is in the cache,
// then shares those blocks instead of computing them again.
bool Scheduler::fork_ready(const Sequence& seq) const {
  const Sequence* parent = seq.fork_parent;
  if (!parent || seq.num_output_tokens() > 0) return true;
  if (parent->status == SequenceStatus::Waiting) return false;
  if (parent->status == SequenceStatus::Running) return parent->num_computed_tokens >= parent->prompt_len;
  return true;
}

bool Scheduler::admit(Sequence* seq, int32_t& budget, SchedulerOutput& out) {
  const int32_t bs = blocks_.block_size();
  const Sequence* parent = seq->fork_parent;
  const bool fork = parent && seq->num_output_tokens() == 0 &&
                    parent->status == SequenceStatus::Running &&
                    parent->num_computed_tokens >= parent->prompt_len && (seq->prompt_len - 1) / bs > 0;
  int32_t n = 0;
  if (fork) {
    const int32_t k = (seq->prompt_len - 1) / bs;  // full prompt blocks, last token excluded
    std::span<const int32_t> shared(parent->block_table.data(), k);
    n = std::min(seq->num_tokens() - k * bs, budget);
    if (!blocks_.can_allocate(*seq, n, shared)) return false;
    blocks_.share_prefix(*seq, *parent, k);
  } else {
    std::vector<int32_t> hits = blocks_.find_cached_prefix(*seq);
    n = std::min(seq->num_tokens() - static_cast<int32_t>(hits.size()) * bs, budget);
    if (!blocks_.can_allocate(*seq, n, hits)) return false;
    blocks_.take_cached(*seq, hits);
  }
  blocks_.allocate(*seq, n);
  seq->status = SequenceStatus::Running;
  running_.push_back(seq);
  out.scheduled.push_back({seq, n});
  out.num_tokens += n;
  budget -= n;
  return true;
}

// Proposed tokens a decoding sequence may have verified in this step: at most K, and never
// more than its remaining output can use (the step also adds one token of the target's own).
static int32_t lookahead_for(const Sequence& seq, int32_t n, int32_t k) {
  if (k <= 0 || n != 1 || seq.pending_tokens > 0 || !seq.params || seq.params->grammar) return 0;
  if (seq.num_total_tokens() - seq.num_computed_tokens != 1) return 0;  // not decoding
  return std::max(0, std::min(k, seq.params->max_tokens - seq.num_output_tokens() - 1));
}

SchedulerOutput Scheduler::schedule(bool speculate) {
  SchedulerOutput out;
  int32_t budget = config_.max_num_batched_tokens;

  // 1. Running sequences, oldest first; preempt the newest when blocks run out.
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence* seq = running_[i];
    // Overlapped steps: a token still on its way that is the request's last needs no step.
    if (seq->pending_tokens > 0 && seq->params &&
        seq->num_output_tokens() + seq->pending_tokens >= seq->params->max_tokens)
      continue;
    const int32_t n = std::min(seq->num_total_tokens() - seq->num_computed_tokens, budget);
    const int32_t lookahead =
        speculate ? std::min(lookahead_for(*seq, n, config_.num_lookahead_tokens), budget - n) : 0;
    bool preempted_self = false;
    while (!blocks_.can_allocate(*seq, n + lookahead)) {
      Sequence* victim = running_.back();
      preempt(victim, out);
      if (victim == seq) {
        preempted_self = true;
        break;
      }
    }
    if (preempted_self) break;
    blocks_.allocate(*seq, n + lookahead);
    out.scheduled.push_back({seq, n, lookahead});
    out.num_tokens += n + lookahead;
    out.speculates |= lookahead > 0;
    budget -= n + lookahead;
  }

  // 2. Waiting sequences (FCFS), unless this step had to preempt.
  if (out.preempted.empty()) {
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      Sequence* seq = *it;
      if (blocks_.blocks_for_tokens(seq->max_kv_tokens) > blocks_.num_blocks()) {
        out.failed.emplace_back(seq, fmt::format(
            "request needs up to {} KV tokens ({} blocks of {}) but the whole KV cache holds "
            "{} blocks; raise the KV cache memory or lower max_tokens",
            seq->max_kv_tokens, blocks_.blocks_for_tokens(seq->max_kv_tokens),
            blocks_.block_size(), blocks_.num_blocks()));
        seq->status = SequenceStatus::Finished;
        it = waiting_.erase(it);
        continue;
      }
      if (budget <= 0 || static_cast<int32_t>(running_.size()) >= config_.max_num_seqs) break;
      if (!fork_ready(*seq)) {
        ++it;
        continue;
      }
      if (!admit(seq, budget, out)) break;  // no room: wait for blocks to be freed
      it = waiting_.erase(it);
    }
  }

  // 3. Forward progress: never return an empty step while work remains. (A step that only
  // preempted has freed blocks: the next one can admit.)
  if (out.scheduled.empty() && out.failed.empty() && out.preempted.empty() && !waiting_.empty()) {
    Sequence* head = waiting_.front();
    waiting_.pop_front();
    head->status = SequenceStatus::Finished;
    out.failed.emplace_back(head, fmt::format(
        "request cannot be scheduled: {} tokens do not fit in the {} free KV blocks of {} tokens",
        head->num_tokens(), blocks_.num_free_blocks(), blocks_.block_size()));
  }
  return out;
}

void Scheduler::on_step_done(const SchedulerOutput& out) {
  for (const ScheduledSeq& s : out.scheduled) {
    if (s.seq->status != SequenceStatus::Running) continue;  // finished or preempted since
    s.seq->num_computed_tokens += s.num_new_tokens;
    blocks_.cache_full_blocks(*s.seq);
  }
}

}  // namespace ferrum
