// The host-sampling step of EngineImpl (engine_impl.h): the forward's logits come to the host,
// where each row is sampled (in parallel from 8 rows) or, for a speculating batch, proposals
// are verified row by row.
#include <algorithm>

#include "engine/engine_impl.h"

namespace ferrum::engine_detail {

size_t EngineImpl::run_on_host(const SchedulerOutput& out, ProfileClock::time_point& t_forward) {
    try {
      const std::span<float> logits = runner_.run(out, sampled_);
      t_forward = ProfileClock::now();
      scheduler_.on_step_done(out);
      if (out.speculates) {
        verify_rows(out, logits);
        return sampled_.size();
      }
      sample_rows(out, logits);
      for (size_t r = 0; r < sampled_.size(); ++r) {
        Sequence& seq = *out.scheduled[sampled_[r]].seq;
        try {
          if (!row_errors_[r].empty()) fail("{}", row_errors_[r]);
          output_.append_token(seq, row_tokens_[r]);
          ++generated_tokens_;
        } catch (const std::exception& e) {
          seq.finish_reason = FinishReason::Error;
          seq.error = std::string("output processing failed: ") + e.what();
        }
        touch(*seq.request);
      }
    } catch (const std::exception& e) {
      fail_step(out, e);
    }
    return sampled_.size();
  }

void EngineImpl::verify_rows(const SchedulerOutput& out, std::span<float> logits) {
    const size_t vocab = static_cast<size_t>(vocab_size_);
    for (size_t r = 0; r < sampled_.size();) {
      const ScheduledSeq& s = out.scheduled[sampled_[r]];
      Sequence& seq = *s.seq;
      const size_t rows = s.num_lookahead > 0 ? seq.spec_draft.size() + 1 : 1;
      const std::span<float> row_logits = logits.subspan(r * vocab, rows * vocab);
      r += rows;
      try {
        if (rows == 1) {
          output_.append_token(seq, sampler_.sample(seq, row_logits));
          ++generated_tokens_;
        } else {
          generated_tokens_ += speculation_->verify(seq, row_logits, output_, blocks_);
        }
      } catch (const std::exception& e) {
        seq.finish_reason = FinishReason::Error;
        seq.error = std::string("output processing failed: ") + e.what();
      }
      Speculation::roll_back(seq, s.num_lookahead > 0, blocks_);
      touch(*seq.request);
    }
  }

void EngineImpl::sample_rows(const SchedulerOutput& out, std::span<float> logits) {
    const size_t rows = sampled_.size();
    row_tokens_.assign(rows, -1);
    row_errors_.assign(rows, std::string());
    auto run = [&](Sampler& sampler, int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        Sequence& seq = *out.scheduled[sampled_[r]].seq;
        try {
          row_tokens_[r] = sampler.sample(seq, logits.subspan(r * static_cast<size_t>(vocab_size_), vocab_size_));
        } catch (const std::exception& e) {
          row_errors_[r] = e.what();
        }
      }
    };
    if (rows < 8) return run(sampler_, 0, static_cast<int64_t>(rows));
    if (!sample_pool_) {
      const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
      sample_pool_ = std::make_unique<ThreadPool>(static_cast<int>(std::min(8u, hw)));
    }
    sample_pool_->parallel_for(static_cast<int64_t>(rows), 1, [&](int64_t begin, int64_t end) {
      std::unique_ptr<Sampler> sampler;
      {
        std::lock_guard lock(spare_mu_);
        if (!spare_samplers_.empty()) {
          sampler = std::move(spare_samplers_.back());
          spare_samplers_.pop_back();
        }
      }
      if (!sampler) sampler = std::make_unique<Sampler>(vocab_size_, model_->config().eos_token_ids);
      run(*sampler, begin, end);
      std::lock_guard lock(spare_mu_);
      spare_samplers_.push_back(std::move(sampler));
    });
  }
}  // namespace ferrum::engine_detail
