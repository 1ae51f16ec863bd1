#include "engine/model_runner.h"

#include <algorithm>

#include "core/error.h"

namespace ferrum {

ModelRunner::ModelRunner(std::shared_ptr<Model> model, int32_t num_blocks, int32_t block_size)
    : model_(std::move(model)), block_size_(block_size),
      vocab_size_(static_cast<int32_t>(model_->config().vocab_size)) {
  cache_ = model_->create_kv_cache(num_blocks, block_size);
  FERRUM_CHECK(cache_ && cache_->num_blocks() == num_blocks && cache_->block_size() == block_size,
               "model created a KV cache of the wrong shape");
}

void ModelRunner::build_batch(const SchedulerOutput& out, ForwardBatch& b,
                              std::vector<int32_t>& sampled) const {
  b.token_ids.clear();
  b.positions.clear();
  b.slot_mapping.clear();
  b.query_start.clear();
  b.seq_lens.clear();
  b.block_tables.clear();
  b.logits_indices.clear();
  b.deferred.clear();
  sampled.clear();

  int32_t max_blocks = 0;
  for (const ScheduledSeq& s : out.scheduled)
    max_blocks = std::max<int32_t>(max_blocks, static_cast<int32_t>(s.seq->block_table.size()));
  b.max_blocks_per_seq = max_blocks;

  b.query_start.push_back(0);
  for (size_t i = 0; i < out.scheduled.size(); ++i) {
    const Sequence& seq = *out.scheduled[i].seq;
    const int32_t start = seq.num_computed_tokens;
    const int32_t end = start + out.scheduled[i].num_new_tokens;
    // Speculative decoding: the proposed tokens follow the last known one, each with a row.
    const int32_t num_proposed = out.scheduled[i].num_lookahead > 0 ? static_cast<int32_t>(seq.spec_draft.size()) : 0;
    FERRUM_CHECK(num_proposed <= out.scheduled[i].num_lookahead && (num_proposed == 0 || end == seq.num_tokens()),
                 "sequence {}: {} proposed tokens for {} lookahead slots", seq.id, num_proposed,
                 out.scheduled[i].num_lookahead);
    for (int32_t pos = start; pos < end; ++pos) {
      if (pos < seq.num_tokens()) {
        b.token_ids.push_back(seq.tokens[pos]);
      } else {  // picked by the step in flight: the model takes it from that step's picks
        FERRUM_CHECK(pos == seq.num_tokens() && seq.pending_tokens > 0 && seq.pending_row >= 0,
                     "sequence {}: token {} is neither known nor the one in flight", seq.id, pos);
        b.deferred.push_back(static_cast<int32_t>(b.token_ids.size()));
        b.deferred.push_back(seq.pending_row);
        b.token_ids.push_back(0);
      }
      b.positions.push_back(pos);
      b.slot_mapping.push_back(seq.block_table[pos / block_size_] * block_size_ + pos % block_size_);
    }
    for (int32_t j = 0; j < num_proposed; ++j) {
      const int32_t pos = end + j;
      b.token_ids.push_back(seq.spec_draft[j]);
      b.positions.push_back(pos);
      b.slot_mapping.push_back(seq.block_table[pos / block_size_] * block_size_ + pos % block_size_);
    }
    b.query_start.push_back(static_cast<int32_t>(b.token_ids.size()));
    b.seq_lens.push_back(end + num_proposed);
    b.block_tables.insert(b.block_tables.end(), seq.block_table.begin(), seq.block_table.end());
    b.block_tables.resize(b.block_tables.size() + (max_blocks - seq.block_table.size()), -1);
    if (end == seq.num_total_tokens()) {  // its last token is computed now: sample the next one
      // (and with proposed tokens, one row after each of them too: num_proposed + 1 rows)
      for (int32_t j = num_proposed; j >= 0; --j) {
        b.logits_indices.push_back(static_cast<int32_t>(b.token_ids.size()) - 1 - j);
        sampled.push_back(static_cast<int32_t>(i));
      }
    }
  }
}

std::span<float> ModelRunner::run(const SchedulerOutput& out, std::vector<int32_t>& sampled) {
  build_batch(out, batch_, sampled);
  if (batch_.num_tokens() == 0) return {};
  std::span<float> logits = model_->forward_view(batch_, *cache_);
  FERRUM_CHECK(logits.size() == sampled.size() * static_cast<size_t>(vocab_size_),
               "model returned {} logits, expected {} rows of {}", logits.size(), sampled.size(), vocab_size_);
  return logits;
}

uint64_t ModelRunner::launch(const SchedulerOutput& out, std::vector<int32_t>& sampled, DeviceSamplingBuilder& builder,
                             SampleBatch& sampling, const std::function<void()>& before_masks) {
  build_batch(out, batch_, sampled);
  FERRUM_CHECK(batch_.num_tokens() > 0, "launch: an empty step");
  sampling.clear();
  for (size_t r = 0; r < sampled.size();) {  // row j of a sequence's rows: after j proposals
    const Sequence& seq = *out.scheduled[sampled[r]].seq;
    const size_t end = sequence_rows_end(sampled, r);
    for (size_t j = 0; r + j < end; ++j) builder.add(seq, sampling, std::span(seq.spec_draft).first(j));
    r = end;
  }
  std::function<void()> masks;
  if (builder.has_masks()) masks = [&] {
    if (before_masks) before_masks();
    builder.fill_masks(sampling);
  };
  const uint64_t ticket = model_->launch_sample(batch_, *cache_, sampling, masks);
  for (size_t r = 0; r < sampled.size(); r = sequence_rows_end(sampled, r)) {  // their next tokens are on the way
    Sequence& seq = *out.scheduled[sampled[r]].seq;
    ++seq.pending_tokens;
    seq.pending_row = static_cast<int32_t>(r);  // (a step verifying proposals is collected before the next)
  }
  return ticket;
}

void ModelRunner::collect(uint64_t ticket, size_t rows, SampleResult& result) {
  model_->collect_sample(ticket, result);
  FERRUM_CHECK(result.tokens.size() == rows, "model sampled {} tokens, expected {}", result.tokens.size(), rows);
}

void ModelRunner::prepare(const PrepareSpec& spec) { model_->prepare(*cache_, spec); }

}  // namespace ferrum
