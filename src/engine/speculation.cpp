#include "engine/speculation.h"

#include <algorithm>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/log.h"

namespace ferrum {

Speculation::Speculation(const SpeculativeOptions& s, const Model& target, int32_t max_model_len, int32_t num_blocks,
                         int32_t block_size, int32_t max_num_batched_tokens, bool model_samples)
    : options_(s),
      model_samples_(model_samples),
      verifier_(static_cast<int32_t>(target.config().vocab_size), target.config().eos_token_ids),
      policy_(std::max(1, s.ngram_min), std::max({1, s.ngram_min, s.ngram_max}), std::max(1, s.num_tokens)) {
  const int32_t vocab_size = static_cast<int32_t>(target.config().vocab_size);
  FERRUM_CHECK(s.num_tokens >= 1 && s.num_tokens <= 16, "speculative tokens must be in [1, 16], got {}", s.num_tokens);
  FERRUM_CHECK(!(s.ngram && s.draft), "choose one drafter: n-gram lookup or a draft model, not both");
  FERRUM_CHECK(s.ngram_min >= 1 && s.ngram_min <= s.ngram_max, "n-gram sizes must satisfy 1 <= min <= max (got {}, {})",
               s.ngram_min, s.ngram_max);
  FERRUM_CHECK(s.max_batch >= 0, "speculative max batch must be >= 0, got {}", s.max_batch);
  if (s.draft) {
    const ModelConfig& d = s.draft->config();
    FERRUM_CHECK(static_cast<int32_t>(d.vocab_size) == vocab_size,
                 "the draft model's vocabulary has {} tokens and the target's {}: a draft model must "
                 "share the target's tokenizer", d.vocab_size, vocab_size);
    FERRUM_CHECK(d.max_position_embeddings >= max_model_len,
                 "the draft model handles {} positions, fewer than the target's context of {} tokens "
                 "(lower max_model_len)", d.max_position_embeddings, max_model_len);
    drafter_ = std::make_unique<DraftModelProposer>(s.draft, num_blocks, block_size, target.config().eos_token_ids,
                                                    max_num_batched_tokens);
  }
  if (model_samples && s.draft)
    log::info("speculative decoding: the draft's proposals are verified on the host (the target's logits rows are "
              "copied back); steps that propose nothing are sampled by the model and overlap as without speculation");
  else if (model_samples)
    log::info("speculative decoding: n-gram proposals are verified by the model's own sampler; a step that "
              "proposes does not overlap the step before it, the others do");
  log::info("speculative decoding: {} proposing up to {} tokens per step, {}",
            s.ngram ? fmt::format("n-gram lookup (n = {}..{}{})", s.ngram_max, s.ngram_min,
                                  s.adaptive ? ", proposals verified where they are expected to pay" : "")
                    : "a draft model",
            s.num_tokens, s.max_batch == 0 ? std::string("at any concurrency")
                                           : fmt::format("while at most {} sequences run or wait", s.max_batch));
}

bool Speculation::should_speculate(size_t active) {
  const int32_t limit = options_.max_batch;
  const bool on = limit == 0 || active <= static_cast<size_t>(limit);
  if (on != speculating_) {
    log::info("speculative decoding {} ({} sequences, max batch {})", on ? "on" : "off", active, limit);
    speculating_ = on;
  }
  return on;
}

// Overlapped steps leave a sequence's newest token on its way until its step is collected;
// proposals must follow it.
static bool may_propose(const Sequence& seq) {
  const SamplingParams* p = seq.params;
  const int32_t outputs = seq.num_total_tokens() - seq.prompt_len;
  return seq.status == SequenceStatus::Running && seq.finish_reason == FinishReason::None && p && !p->grammar &&
         seq.num_total_tokens() - seq.num_computed_tokens == 1 && p->max_tokens - outputs > 1;
}

bool Speculation::wants_proposals(const std::vector<Sequence*>& running, size_t active) {
  if (!should_speculate(active)) return false;
  if (drafter_ || !options_.adaptive) return true;
  const bool found = lookup_behind(running);  // (also scores the sequences' proposals)
  if (skip_tries_ > 0) {
    --skip_tries_;
    return false;
  }
  return found;
}

// The lookup each sequence would make now. For a sequence with a token in flight it is one
// token behind: its first proposal is a guess at that token, and the step that proposes would
// propose the rest afresh, so its gains are weighed by the chance that the guess holds.
bool Speculation::lookup_behind(const std::vector<Sequence*>& running) {
  gains_.clear();
  for (Sequence* seq : running) {
    if (!may_propose(*seq)) continue;
    int32_t n = 0;
    lookup_ = propose_ngram(seq->tokens, options_.ngram_min, options_.ngram_max, options_.num_tokens, &n);
    policy_.observe(seq->ngram_acceptance, seq->tokens, lookup_, n);
    if (lookup_.empty()) continue;
    std::vector<double>& g = gains_.emplace_back();
    policy_.gains(seq->ngram_acceptance, n, static_cast<int32_t>(lookup_.size()), g);
    if (seq->pending_tokens > 0 && !g.empty()) {
      const double first_holds = g.front();
      for (double& x : g) x *= first_holds;
    }
  }
  return !gains_.empty() && policy_.worth_proposing(gains_, static_cast<int32_t>(running.size()));
}

// A try that verified nothing (the guess one token behind did not hold) doubles the steps
// before the next try, up to 31; one that verified resets it.
void Speculation::note_try(bool verified) {
  if (verified) {
    failed_tries_ = skip_tries_ = 0;
    return;
  }
  failed_tries_ = std::min(failed_tries_ + 1, 5);
  skip_tries_ = (1 << failed_tries_) - 1;
}

void Speculation::propose(const SchedulerOutput& out) {
  for (const ScheduledSeq& sch : out.scheduled)
    FERRUM_CHECK(sch.num_lookahead == 0 || sch.seq->pending_tokens == 0,
                 "sequence {}: proposals for a sequence whose newest token is still on its way", sch.seq->id);
  try {
    if (drafter_) {
      drafter_->propose(out);
      return;
    }
    propose_ngram_step(out);
  } catch (const std::exception& e) {
    log::error("speculative decoding: the draft model failed, this step proposes nothing: {}", e.what());
    step_rows_ = 0;
    for (const ScheduledSeq& sch : out.scheduled) {
      sch.seq->spec_draft.clear();
      sch.seq->spec_draft_probs.clear();
      sch.seq->draft_num_computed = 0;
    }
  }
}

void Speculation::propose_ngram_step(const SchedulerOutput& out) {
  gains_.clear();
  proposing_.clear();
  for (const ScheduledSeq& sch : out.scheduled) {
    if (sch.num_lookahead <= 0) continue;
    Sequence& seq = *sch.seq;
    int32_t n = 0;
    seq.spec_draft = propose_ngram(seq.tokens, options_.ngram_min, options_.ngram_max, sch.num_lookahead, &n);
    seq.spec_draft_probs.clear();
    if (!options_.adaptive) continue;
    policy_.observe(seq.ngram_acceptance, seq.tokens, seq.spec_draft, n);
    if (seq.spec_draft.empty()) continue;
    gains_.emplace_back();
    policy_.gains(seq.ngram_acceptance, n, static_cast<int32_t>(seq.spec_draft.size()), gains_.back());
    proposing_.push_back(&seq);
  }
  if (options_.adaptive && !proposing_.empty()) {
    const std::vector<int32_t> keep = policy_.choose(gains_, static_cast<int32_t>(out.scheduled.size()));
    for (size_t i = 0; i < proposing_.size(); ++i) proposing_[i]->spec_draft.resize(keep[i]);
  }
  step_rows_ = 0;
  for (const ScheduledSeq& sch : out.scheduled)
    if (sch.num_lookahead > 0) step_rows_ += static_cast<int32_t>(sch.seq->spec_draft.size());
  note_try(step_rows_ > 0);
}

bool Speculation::has_proposals(const SchedulerOutput& out) {
  for (const ScheduledSeq& sch : out.scheduled)
    if (sch.num_lookahead > 0 && !sch.seq->spec_draft.empty()) return true;
  return false;
}

void Speculation::release_lookahead(SchedulerOutput& out, BlockManager& blocks) {
  for (ScheduledSeq& sch : out.scheduled) {
    if (sch.num_lookahead == 0) continue;
    blocks.truncate(*sch.seq, sch.seq->num_computed_tokens + sch.num_new_tokens);
    out.num_tokens -= sch.num_lookahead;
    sch.num_lookahead = 0;
    sch.seq->spec_draft.clear();
    sch.seq->spec_draft_probs.clear();
  }
  out.speculates = false;
}

void Speculation::step_done(const SchedulerOutput& out, double ms) { record(out, std::exchange(step_rows_, 0), ms); }

void Speculation::step_delivered(const SchedulerOutput& out, int32_t rows) {
  const auto now = std::chrono::steady_clock::now();
  const auto last = std::exchange(last_delivery_, now);
  if (last == std::chrono::steady_clock::time_point{}) return;
  record(out, rows, std::chrono::duration<double, std::milli>(now - last).count());
}

void Speculation::record(const SchedulerOutput& out, int32_t rows, double ms) {
  if (drafter_ || !options_.adaptive || out.scheduled.empty()) return;
  // Only decode-only steps: a prompt chunk's cost is not the proposals'.
  for (const ScheduledSeq& sch : out.scheduled)
    if (sch.num_new_tokens != 1) return;
  policy_.record_step(static_cast<int32_t>(out.scheduled.size()), rows, ms);
}

void Speculation::count_verification(size_t proposals, int32_t accepted) {
  ++drafts_;
  draft_tokens_ += proposals;
  accepted_tokens_ += static_cast<uint64_t>(accepted);
}

// The accepted proposals that were appended: their K/V (computed by the step) count.
void Speculation::commit_accepted(Sequence& seq, int32_t appended_proposals, BlockManager& blocks) {
  if (seq.status != SequenceStatus::Running) return;
  seq.num_computed_tokens += appended_proposals;
  blocks.cache_full_blocks(seq);
}

size_t Speculation::accept_picks(Sequence& seq, size_t rows, const std::function<int32_t(size_t)>& pick,
                                 OutputProcessor& output, BlockManager& blocks) {
  const size_t k = seq.spec_draft.size();
  FERRUM_CHECK(rows == k + 1, "sequence {}: {} picks for {} proposals", seq.id, rows, k);
  int32_t accepted = 0;
  size_t appended = 0;
  for (size_t j = 0; j <= k && seq.finish_reason == FinishReason::None; ++j) {
    const int32_t token = pick(j);
    output.append_token(seq, token);
    ++appended;
    if (j == k || token != seq.spec_draft[j]) break;
    ++accepted;
  }
  count_verification(k, accepted);
  commit_accepted(seq, accepted, blocks);
  return appended;
}

size_t Speculation::verify(Sequence& seq, std::span<float> rows, OutputProcessor& output, BlockManager& blocks) {
  verifier_.verify(seq, rows, verdict_);
  count_verification(seq.spec_draft.size(), verdict_.num_accepted);
  int32_t appended_proposals = 0;
  size_t appended = 0;
  for (size_t i = 0; i < verdict_.tokens.size() && seq.finish_reason == FinishReason::None; ++i) {
    if (!verdict_.logprobs.empty()) seq.new_logprobs.push_back(std::move(verdict_.logprobs[i]));
    output.append_token(seq, verdict_.tokens[i]);
    ++appended;
    if (static_cast<int32_t>(i) < verdict_.num_accepted) ++appended_proposals;
  }
  commit_accepted(seq, appended_proposals, blocks);
  return appended;
}

void Speculation::roll_back(Sequence& seq, bool had_lookahead, BlockManager& blocks) {
  if (had_lookahead && seq.status == SequenceStatus::Running) {
    blocks.truncate(seq, seq.num_computed_tokens);
    seq.draft_num_computed = std::min(seq.draft_num_computed, seq.num_computed_tokens);
  }
  seq.spec_draft.clear();
  seq.spec_draft_probs.clear();
}

}  // namespace ferrum
