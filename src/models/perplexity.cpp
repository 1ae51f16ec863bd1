#include "models/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace ferrum {
namespace {

constexpr int32_t kBlockSize = 16;

// One window as a single prefill sequence over blocks 0..n-1 (slot = position), asking for
// the logits of the rows that predict the scored tokens.
ForwardBatch window_batch(std::span<const int32_t> window, int32_t first_row) {
  const int32_t ctx = static_cast<int32_t>(window.size());
  ForwardBatch b;
  b.token_ids.assign(window.begin(), window.end());
  b.positions.resize(ctx);
  for (int32_t i = 0; i < ctx; ++i) b.positions[i] = i;
  b.slot_mapping = b.positions;
  b.query_start = {0, ctx};
  b.seq_lens = {ctx};
  b.max_blocks_per_seq = (ctx + kBlockSize - 1) / kBlockSize;
  for (int32_t i = 0; i < b.max_blocks_per_seq; ++i) b.block_tables.push_back(i);
  for (int32_t row = first_row; row < ctx - 1; ++row) b.logits_indices.push_back(row);
  return b;
}

// -log softmax(logits)[target], in double.
double token_nll(const float* logits, int64_t vocab, int32_t target) {
  const float max = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - max);
  return std::log(sum) + max - static_cast<double>(logits[target]);
}

}  // namespace

PerplexityResult compute_perplexity(Model& model, std::span<const int32_t> tokens,
                                    const PerplexityOptions& options) {
  const ModelConfig& cfg = model.config();
  const int32_t ctx = options.ctx;
  if (ctx < 4) fail("perplexity: the context window must be at least 4 tokens, got {}", ctx);
  if (ctx > cfg.max_position_embeddings)
    fail("perplexity: a context window of {} exceeds the model's max_position_embeddings ({})", ctx,
         cfg.max_position_embeddings);
  if (static_cast<int64_t>(tokens.size()) < ctx)
    fail("perplexity: the text has {} tokens, fewer than one window of {}; use a longer text or a smaller context",
         tokens.size(), ctx);
  for (int32_t id : tokens)
    if (id < 0 || id >= cfg.vocab_size) fail("perplexity: token id {} is outside the model's vocabulary ({})", id, cfg.vocab_size);

  const int32_t first = ctx / 2;
  const int64_t vocab = cfg.vocab_size;
  auto cache = model.create_kv_cache((ctx + kBlockSize - 1) / kBlockSize, kBlockSize);
  PerplexityResult r;
  r.ctx = ctx;
  r.num_windows = static_cast<int32_t>(tokens.size() / ctx);
  double nll_sum = 0, nll2_sum = 0;
  std::vector<int32_t> window(ctx);
  std::vector<float> logits;
  for (int32_t w = 0; w < r.num_windows; ++w) {
    std::copy_n(tokens.begin() + static_cast<int64_t>(w) * ctx, ctx, window.begin());
    if (options.bos_id) window[0] = *options.bos_id;
    const ForwardBatch batch = window_batch(window, first);
    model.forward(batch, *cache, logits);
    double window_sum = 0;
    for (size_t row = 0; row < batch.logits_indices.size(); ++row) {
      const int32_t target = window[batch.logits_indices[row] + 1];
      const double nll = token_nll(logits.data() + row * vocab, vocab, target);
      window_sum += nll;
      nll2_sum += nll * nll;
    }
    nll_sum += window_sum;
    r.num_scored += static_cast<int64_t>(batch.logits_indices.size());
    r.window_mean_nll.push_back(window_sum / static_cast<double>(batch.logits_indices.size()));
    if (options.on_window) options.on_window(w, std::exp(nll_sum / static_cast<double>(r.num_scored)));
  }
  const double n = static_cast<double>(r.num_scored);
  r.mean_nll = nll_sum / n;
  r.ppl = std::exp(r.mean_nll);
  const double variance = nll2_sum / n - r.mean_nll * r.mean_nll;
  r.ppl_stderr = variance > 0 && n > 1 ? r.ppl * std::sqrt(variance / (n - 1)) : 0.0;
  return r;
}

}  // namespace ferrum
