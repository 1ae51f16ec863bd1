#include "engine/spec_drafter.h"

#include <algorithm>

#include "core/error.h"

namespace ferrum {

std::vector<int32_t> propose_ngram(std::span<const int32_t> tokens, int32_t min_n, int32_t max_n, int32_t k,
                                   int32_t* matched) {
  const int32_t len = static_cast<int32_t>(tokens.size());
  if (matched) *matched = 0;
  if (k <= 0) return {};
  for (int32_t n = std::min(max_n, len - 1); n >= std::max(1, min_n); --n) {
    const std::span<const int32_t> suffix = tokens.last(n);
    // Most recent occurrence first; it must end before the suffix itself starts to follow.
    for (int32_t i = len - n - 1; i >= 0; --i) {
      if (!std::equal(suffix.begin(), suffix.end(), tokens.begin() + i)) continue;
      const int32_t from = i + n, to = std::min(len, from + k);
      if (matched) *matched = n;
      return std::vector<int32_t>(tokens.begin() + from, tokens.begin() + to);
    }
  }
  return {};
}

DraftModelProposer::DraftModelProposer(std::shared_ptr<Model> draft, int32_t num_blocks, int32_t block_size,
                                       std::vector<int32_t> eos_token_ids, int32_t max_step_tokens)
    : model_(std::move(draft)), block_size_(block_size),
      vocab_size_(static_cast<int32_t>(model_->config().vocab_size)), max_step_tokens_(std::max(1, max_step_tokens)),
      sampler_(vocab_size_, std::move(eos_token_ids)) {
  cache_ = model_->create_kv_cache(num_blocks, block_size);
  FERRUM_CHECK(cache_ && cache_->num_blocks() == num_blocks, "draft model created a KV cache of the wrong shape");
}

void DraftModelProposer::begin_batch(const std::vector<Entry*>& seqs) {
  batch_ = ForwardBatch{};
  batch_.query_start.push_back(0);
  for (const Entry* e : seqs)
    batch_.max_blocks_per_seq = std::max<int32_t>(batch_.max_blocks_per_seq, static_cast<int32_t>(e->seq->block_table.size()));
}

// The draft's K/V of every position before the last known token, in forwards of at most
// max_step_tokens_ tokens (their logits are not needed; one row per sequence is asked anyway).
void DraftModelProposer::catch_up(std::vector<Entry>& entries) {
  std::vector<Entry*> all;
  for (Entry& e : entries) all.push_back(&e);
  for (;;) {
    begin_batch(all);
    int32_t budget = max_step_tokens_;
    for (Entry* e : all) {
      Sequence& seq = *e->seq;
      const int32_t gap = seq.num_tokens() - 1 - seq.draft_num_computed;
      if (gap <= 0 || budget <= 0) continue;
      const int32_t n = std::min(gap, budget);
      add_tokens(seq, seq.draft_num_computed, seq.draft_num_computed + n);
      seq.draft_num_computed += n;
      budget -= n;
    }
    if (batch_.token_ids.empty()) return;
    model_->forward_view(batch_, *cache_);
  }
}

// Positions [start, end) of seq (one logits row, the last); tokens past the known ones are
// its proposals so far.
void DraftModelProposer::add_tokens(const Sequence& seq, int32_t start, int32_t end) {
  ForwardBatch& b = batch_;
  for (int32_t pos = start; pos < end; ++pos) {
    const int32_t known = seq.num_tokens();
    b.token_ids.push_back(pos < known ? seq.tokens[pos] : seq.spec_draft[pos - known]);
    b.positions.push_back(pos);
    b.slot_mapping.push_back(seq.block_table[pos / block_size_] * block_size_ + pos % block_size_);
  }
  b.query_start.push_back(static_cast<int32_t>(b.token_ids.size()));
  b.seq_lens.push_back(end);
  b.block_tables.insert(b.block_tables.end(), seq.block_table.begin(), seq.block_table.end());
  b.block_tables.resize(b.block_tables.size() + (b.max_blocks_per_seq - seq.block_table.size()), -1);
  b.logits_indices.push_back(static_cast<int32_t>(b.token_ids.size()) - 1);
}

// Samples each row's proposal with the request's parameters and keeps its distribution.
void DraftModelProposer::take_rows(std::span<float> logits, const std::vector<Entry*>& rows) {
  const size_t vocab = static_cast<size_t>(vocab_size_);
  FERRUM_CHECK(logits.size() == rows.size() * vocab, "draft model returned {} logits for {} rows", logits.size(),
               rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    Sequence& seq = *rows[r]->seq;
    std::span<float> row = logits.subspan(r * vocab, vocab);
    sampler_.process(seq, row, seq.spec_draft);
    sampler_.distribution(row, *seq.params, probs_);
    double total = 0.0;
    for (float q : probs_) total += q;
    const double target = uniform01(seq.rng) * total;
    double acc = 0.0;
    int32_t token = -1;
    for (int32_t t = 0; t < vocab_size_; ++t) {
      if (probs_[t] <= 0.0f) continue;
      acc += probs_[t];
      token = t;
      if (target < acc) break;
    }
    FERRUM_CHECK(token >= 0, "draft model: an empty proposal distribution");
    seq.spec_draft.push_back(token);
    seq.spec_draft_probs.insert(seq.spec_draft_probs.end(), probs_.begin(), probs_.end());
  }
}

void DraftModelProposer::propose(const SchedulerOutput& out) {
  std::vector<Entry> entries;
  for (const ScheduledSeq& s : out.scheduled) {
    if (s.num_lookahead <= 0) continue;
    s.seq->spec_draft.clear();
    s.seq->spec_draft_probs.clear();
    entries.push_back({s.seq, s.num_lookahead});
  }
  catch_up(entries);
  std::vector<Entry*> rows;
  for (;;) {
    rows.clear();
    for (Entry& e : entries)
      if (static_cast<int32_t>(e.seq->spec_draft.size()) < e.want) rows.push_back(&e);
    if (rows.empty()) break;
    begin_batch(rows);
    for (Entry* e : rows) {
      Sequence& seq = *e->seq;
      // The first pass feeds the last known token; later ones the newest proposal.
      const int32_t end = seq.num_tokens() + static_cast<int32_t>(seq.spec_draft.size());
      const int32_t start = std::min(seq.draft_num_computed, end - 1);
      add_tokens(seq, start, end);
      seq.draft_num_computed = end;
    }
    take_rows(model_->forward_view(batch_, *cache_), rows);
  }
}

}  // namespace ferrum
