#include "engine/speculation.h"

#include <algorithm>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/log.h"

namespace ferrum {

Speculation::Speculation(const SpeculativeOptions& s, const Model& target, int32_t max_model_len, int32_t num_blocks,
                         int32_t block_size, int32_t max_num_batched_tokens)
    : options_(s),
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
  if (target.samples_on_device())
    log::info("speculative decoding: tokens are verified and sampled on the host (the target's logits rows "
              "are copied back); overlapped steps are off");
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

void Speculation::propose(const SchedulerOutput& out) {
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
}

void Speculation::step_done(const SchedulerOutput& out, double ms) {
  const int32_t rows = std::exchange(step_rows_, 0);
  if (drafter_ || !options_.adaptive || out.scheduled.empty()) return;
  // Only decode-only steps: a prompt chunk's cost is not the proposals'.
  for (const ScheduledSeq& sch : out.scheduled)
    if (sch.num_new_tokens != 1) return;
  policy_.record_step(static_cast<int32_t>(out.scheduled.size()), rows, ms);
}

size_t Speculation::verify(Sequence& seq, std::span<float> rows, OutputProcessor& output, BlockManager& blocks) {
  verifier_.verify(seq, rows, verdict_);
  ++drafts_;
  draft_tokens_ += seq.spec_draft.size();
  accepted_tokens_ += static_cast<uint64_t>(verdict_.num_accepted);
  int32_t appended_proposals = 0;
  size_t appended = 0;
  for (size_t i = 0; i < verdict_.tokens.size() && seq.finish_reason == FinishReason::None; ++i) {
    if (!verdict_.logprobs.empty()) seq.new_logprobs.push_back(std::move(verdict_.logprobs[i]));
    output.append_token(seq, verdict_.tokens[i]);
    ++appended;
    if (static_cast<int32_t>(i) < verdict_.num_accepted) ++appended_proposals;
  }
  if (seq.status == SequenceStatus::Running) {
    seq.num_computed_tokens += appended_proposals;  // their K/V are the accepted ones
    blocks.cache_full_blocks(seq);
  }
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
