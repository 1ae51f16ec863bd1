// Perplexity of a token sequence under a model, computed as llama.cpp's perplexity tool does:
// the tokens are cut into non-overlapping windows of `ctx` tokens (a tail shorter than ctx is
// dropped), each window runs from position 0 in a fresh context, and only its second half is
// scored: the predictions of tokens ctx/2+1 .. ctx-1, so every scored token has at least ctx/2
// tokens of context. PPL = exp(mean NLL) over all scored tokens of all windows.
// tools/tiny_reference.py computes the same with PyTorch (models/ferrum-tiny/reference.json).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "models/model.h"

namespace ferrum {

struct PerplexityOptions {
  int32_t ctx = 512;
  // If set, each window's first token is replaced by it (llama.cpp does so for models whose
  // tokenizer adds a BOS), so that every window starts as a fresh document.
  std::optional<int32_t> bos_id;
  // Called after each window with its index and the running perplexity so far.
  std::function<void(int32_t window, double running_ppl)> on_window;
};

struct PerplexityResult {
  int32_t ctx = 0;
  int32_t num_windows = 0;
  int64_t num_scored = 0;
  double mean_nll = 0;
  double ppl = 0;
  double ppl_stderr = 0;                // llama.cpp's "+/-": ppl * stddev(nll) / sqrt(n - 1)
  std::vector<double> window_mean_nll;  // per window, for locating a regression
};

// Throws ferrum::Error if ctx is not in [4, max_position_embeddings], if the tokens do not fill
// one window, or if a token id is outside the model's vocabulary.
PerplexityResult compute_perplexity(Model& model, std::span<const int32_t> tokens,
                                    const PerplexityOptions& options);

}  // namespace ferrum
