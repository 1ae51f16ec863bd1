#include "engine/device_sampling.h"

#include <algorithm>
#include <thread>

#include "backend/splitmix.h"
#include "core/error.h"

namespace ferrum {

DeviceSamplingBuilder::DeviceSamplingBuilder(int32_t vocab_size, std::vector<int32_t> eos_token_ids)
    : vocab_size_(vocab_size), eos_ids_(std::move(eos_token_ids)), seen_(static_cast<size_t>(vocab_size), 0) {}

uint64_t DeviceSamplingBuilder::key(uint64_t seed, int32_t index) {
  return splitmix64_mix(seed + kGoldenGamma * (static_cast<uint64_t>(index) + 1));
}

void DeviceSamplingBuilder::add(const Sequence& seq, SampleBatch& batch, std::span<const int32_t> proposed) {
  const SamplingParams& p = *seq.params;
  SampleRow row;
  row.temperature = p.temperature;
  row.top_k = p.top_k;
  row.top_p = p.top_p;
  row.min_p = p.min_p;
  row.key = seq.sample_key;
  // Tokens still on their way count: this is the draw after them (and min_tokens past them);
  // so do proposals.
  const int32_t outputs = seq.num_output_tokens() + seq.pending_tokens + static_cast<int32_t>(proposed.size());
  row.counter = static_cast<uint64_t>(outputs);
  row.num_logprobs = p.logprobs ? *p.logprobs : -1;
  row.edits_begin = static_cast<int32_t>(batch.edits.size());
  // Each phase names a token at most once: `seen_` marks this phase's tokens.
  auto edit = [&](int32_t token, int32_t kind, float value) {
    if (token < 0 || token >= vocab_size_ || seen_[token]) return;
    seen_[token] = 1;
    marked_.push_back(token);
    batch.edits.push_back({token, kind, value});
  };
  auto end_phase = [&] {
    for (int32_t t : marked_) seen_[t] = 0;
    marked_.clear();
  };
  if (outputs < p.min_tokens) {
    for (int32_t t : p.stop_token_ids) edit(t, LogitEdit::Mask, 0.0f);
    if (!p.ignore_eos)
      for (int32_t t : eos_ids_) edit(t, LogitEdit::Mask, 0.0f);
    end_phase();
  }
  for (const auto& [t, bias] : p.logit_bias) edit(t, LogitEdit::Bias, bias);
  end_phase();
  if (p.repetition_penalty != 1.0f) {
    for (int32_t t : seq.tokens) edit(t, LogitEdit::Repetition, p.repetition_penalty);
    for (int32_t t : proposed) edit(t, LogitEdit::Repetition, p.repetition_penalty);
    end_phase();
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    auto penalty = [&](int32_t count) { return p.frequency_penalty * static_cast<float>(count) + p.presence_penalty; };
    auto times_proposed = [&](int32_t t) { return static_cast<int32_t>(std::count(proposed.begin(), proposed.end(), t)); };
    for (const auto& [t, count] : seq.output_counts) edit(t, LogitEdit::Penalty, penalty(count + times_proposed(t)));
    for (int32_t t : proposed)  // (a token counted above is not edited again)
      if (!seq.output_counts.contains(t)) edit(t, LogitEdit::Penalty, penalty(times_proposed(t)));
    end_phase();
  }
  row.edits_end = static_cast<int32_t>(batch.edits.size());
  if (seq.constraint) {
    row.mask = static_cast<int32_t>(masked_.size());
    masked_.push_back(&seq);
  }
  batch.rows.push_back(row);
}

void DeviceSamplingBuilder::fill_masks(SampleBatch& batch) {
  if (masked_.empty()) return;
  const size_t words = structured::TokenVocab::words_for(static_cast<size_t>(vocab_size_));
  batch.mask_words = static_cast<int32_t>(words);
  batch.masks.resize(masked_.size() * words);
  const int64_t n = static_cast<int64_t>(masked_.size());
  std::vector<std::string> errors(masked_.size());
  auto fill = [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const Sequence& seq = *masked_[m];
      try {
        FERRUM_CHECK(seq.pending_tokens == 0, "a sequence with a grammar has {} tokens on the way", seq.pending_tokens);
        seq.constraint->allowed(std::span<uint32_t>(batch.masks).subspan(m * words, words),
                                static_cast<size_t>(vocab_size_), eos_ids_, !seq.params->ignore_eos);
      } catch (const std::exception& e) {
        errors[m] = e.what();
      }
    }
  };
  // A mask is a cache hit (a copy) mostly; a state seen for the first time walks the
  // vocabulary, and from a few rows on those walks run side by side.
  if (n >= 4) {
    if (!pool_) pool_ = std::make_unique<ThreadPool>(static_cast<int>(std::min(8u, std::max(1u, std::thread::hardware_concurrency()))));
    pool_->parallel_for(n, 1, fill);
  } else {
    fill(0, n);
  }
  masked_.clear();
  for (const std::string& e : errors)
    if (!e.empty()) fail("{}", e);
}

int32_t DeviceSamplingBuilder::take(Sequence& seq, const SampleBatch& batch, const SampleResult& result, size_t r) {
  const int32_t token = result.tokens.at(r);
  if (token < 0) fail("device sampling returned no token (every logit was NaN)");
  const SampleRow& row = batch.rows[r];
  // Every allowed token at -inf leaves the pick to the argmax of nothing (the host Sampler
  // checks this before it picks).
  if (row.mask >= 0 && !mask_allows(batch.masks.data() + static_cast<size_t>(row.mask) * batch.mask_words, token))
    fail("structured output: no token of the vocabulary can continue the output");
  const int32_t n = row.num_logprobs;
  if (n >= 0) {
    TokenLogprob lp;
    lp.token_id = token;
    lp.logprob = result.logprobs.at(r);
    for (int32_t j = 0; j < n && j < kMaxTopLogprobs; ++j)
      lp.top.emplace_back(result.top_ids.at(r * kMaxTopLogprobs + j), result.top_logprobs.at(r * kMaxTopLogprobs + j));
    seq.new_logprobs.push_back(std::move(lp));
  }
  return token;
}

}  // namespace ferrum
