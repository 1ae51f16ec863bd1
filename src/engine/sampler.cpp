#include "engine/sampler.h"

#include "engine/row_ops.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ferrum {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kGreedyTemperature = 1e-5f;  // below this, temperature means greedy (vLLM)

int32_t argmax(std::span<const float> logits) { return row_ops::argmax(logits.data(), logits.size()); }

}  // namespace

void apply_penalties(std::span<float> logits, std::span<const int32_t> context,
                     const std::unordered_map<int32_t, int32_t>& output_counts,
                     const SamplingParams& p, std::vector<uint8_t>& seen) {
  if (p.repetition_penalty != 1.0f) {
    seen.resize(logits.size(), 0);
    const float r = p.repetition_penalty;
    for (int32_t t : context) {
      if (t < 0 || static_cast<size_t>(t) >= logits.size() || seen[t]) continue;
      seen[t] = 1;
      float& l = logits[t];
      l = l > 0 ? l / r : l * r;
    }
    for (int32_t t : context)
      if (t >= 0 && static_cast<size_t>(t) < logits.size()) seen[t] = 0;
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    for (const auto& [t, count] : output_counts) {
      if (t < 0 || static_cast<size_t>(t) >= logits.size()) continue;
      logits[t] -= p.frequency_penalty * static_cast<float>(count) + p.presence_penalty;
    }
  }
}

void compute_logprobs(std::span<const float> logits, int32_t token, int32_t top_n,
                      TokenLogprob& out, std::vector<int32_t>& index) {
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l - mx));
  const float lse = mx + static_cast<float>(std::log(sum));
  out.token_id = token;
  out.logprob = logits[token] - lse;
  out.top.clear();
  if (top_n <= 0) return;
  const int32_t vocab = static_cast<int32_t>(logits.size());
  top_n = std::min(top_n, vocab);
  index.resize(vocab);
  for (int32_t i = 0; i < vocab; ++i) index[i] = i;
  auto better = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(index.begin(), index.begin() + top_n, index.end(), better);
  for (int32_t i = 0; i < top_n; ++i) out.top.emplace_back(index[i], logits[index[i]] - lse);
}

Sampler::Sampler(int32_t vocab_size, std::vector<int32_t> eos_token_ids)
    : vocab_size_(vocab_size), eos_ids_(std::move(eos_token_ids)) {}

// The candidates of one draw, shared by sample_filtered and distribution so that both see
// exactly the same filter: returns a token when the choice is forced (greedy, or no finite
// logit); otherwise -1 with weight_ = exp(l / T - max), and either all_tokens (no filter:
// every token of nonzero weight is a candidate) or index_ = the kept candidates in draw order;
// `total` is their summed weight.
int32_t Sampler::prepare_draw(std::span<float> logits, const SamplingParams& p, double& total, bool& all_tokens) {
  all_tokens = false;
  if (p.temperature < kGreedyTemperature) return argmax(logits);

  const int32_t vocab = static_cast<int32_t>(logits.size());
  const float mx = row_ops::scale_and_max(logits.data(), logits.size(), 1.0f / p.temperature);
  if (!(mx > kNegInf)) return argmax(logits);
  weight_.resize(vocab);
  const float* w = weight_.data();
  total = row_ops::exp_shifted(logits.data(), weight_.data(), logits.size(), mx);  // w = exp(l - mx)

  const bool top_k_on = p.top_k > 0 && p.top_k < vocab;
  if (p.min_p <= 0.0f && !top_k_on && p.top_p >= 1.0f) {
    all_tokens = true;
    return -1;
  }

  // Candidates: min_p keeps p >= min_p * p_max, i.e. w >= min_p (w_max = 1).
  index_.clear();
  total = 0.0;
  for (int32_t i = 0; i < vocab; ++i) {
    if (w[i] == 0.0f || w[i] < p.min_p) continue;
    total += w[i];
    index_.push_back(i);
  }
  if (index_.empty()) return argmax(logits);

  auto better = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < index_.size()) {
    std::nth_element(index_.begin(), index_.begin() + p.top_k, index_.end(), better);
    index_.resize(p.top_k);
    total = 0.0;
    for (int32_t i : index_) total += weight_[i];
  }
  if (p.top_p < 1.0f) {
    // Keep the smallest head whose mass reaches top_p (at least one token). The head is
    // usually short: sort a growing prefix instead of the whole vocabulary.
    const double target = static_cast<double>(p.top_p) * total;
    size_t sorted = 0, keep = 0;
    double cum = 0.0;
    for (size_t k = std::min<size_t>(64, index_.size());; k = std::min(index_.size(), k * 4)) {
      std::partial_sort(index_.begin() + sorted, index_.begin() + k, index_.end(), better);
      for (; keep < k; ++keep) {
        if (cum >= target && keep > 0) break;
        cum += weight_[index_[keep]];
      }
      sorted = k;
      if ((cum >= target && keep > 0) || k == index_.size()) break;
    }
    index_.resize(keep);
    total = cum;
  }
  return -1;
}

int32_t Sampler::sample_filtered(std::span<float> logits, const SamplingParams& p, std::mt19937_64& rng) {
  double total = 0.0;
  bool all_tokens = false;
  if (const int32_t forced = prepare_draw(logits, p, total, all_tokens); forced >= 0) return forced;
  const float* w = weight_.data();
  const double draw = uniform01(rng) * total;
  double acc = 0.0;
  if (all_tokens) {  // no filter: draw from the whole row (zero weights are never picked)
    int32_t last = 0;
    for (int32_t i = 0; i < static_cast<int32_t>(logits.size()); ++i) {
      if (w[i] == 0.0f) continue;
      acc += w[i];
      last = i;
      if (draw < acc) return i;
    }
    return last;  // rounding at the very top of the range
  }
  for (int32_t i : index_) {
    acc += w[i];
    if (draw < acc) return i;
  }
  return index_.back();  // rounding at the very top of the range
}

void Sampler::distribution(std::span<float> logits, const SamplingParams& p, std::vector<float>& probs) {
  probs.assign(logits.size(), 0.0f);
  double total = 0.0;
  bool all_tokens = false;
  if (const int32_t forced = prepare_draw(logits, p, total, all_tokens); forced >= 0) {
    probs[forced] = 1.0f;
    return;
  }
  const double scale = 1.0 / total;
  if (all_tokens) {
    for (size_t i = 0; i < logits.size(); ++i) probs[i] = static_cast<float>(weight_[i] * scale);
  } else {
    for (int32_t i : index_) probs[i] = static_cast<float>(weight_[i] * scale);
  }
}

void Sampler::process(const Sequence& seq, std::span<float> logits, std::span<const int32_t> proposed) {
  const SamplingParams& p = *seq.params;
  // min_tokens: no stop token before it is reached.
  if (seq.num_output_tokens() + static_cast<int32_t>(proposed.size()) < p.min_tokens) {
    for (int32_t t : p.stop_token_ids)
      if (t >= 0 && t < vocab_size_) logits[t] = kNegInf;
    if (!p.ignore_eos)
      for (int32_t t : eos_ids_)
        if (t >= 0 && t < vocab_size_) logits[t] = kNegInf;
  }
  for (const auto& [t, bias] : p.logit_bias)
    if (t >= 0 && t < vocab_size_) logits[t] += bias;
  const bool penalties = p.repetition_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
  if (proposed.empty() || !penalties) {
    apply_penalties(logits, seq.tokens, seq.output_counts, p, seen_);
  } else {  // as if the proposed tokens were already generated
    context_.assign(seq.tokens.begin(), seq.tokens.end());
    context_.insert(context_.end(), proposed.begin(), proposed.end());
    counts_ = seq.output_counts;
    for (int32_t t : proposed) ++counts_[t];
    apply_penalties(logits, context_, counts_, p, seen_);
  }
  // Structured output last, so that no bias or penalty can bring a masked token back.
  // (Speculation is never used with a grammar: the matcher is not advanced by proposals.)
  if (seq.constraint) {
    FERRUM_CHECK(proposed.empty(), "structured output cannot be combined with proposed tokens");
    seq.constraint->apply(logits, eos_ids_, !p.ignore_eos, allowed_);
  }
}

int32_t Sampler::sample(Sequence& seq, std::span<float> logits) {
  const SamplingParams& p = *seq.params;
  const bool want_logprobs = p.logprobs.has_value();
  if (want_logprobs) raw_.assign(logits.begin(), logits.end());
  process(seq, logits);
  const int32_t token = sample_filtered(logits, p, seq.rng);
  if (want_logprobs) {
    seq.new_logprobs.emplace_back();
    compute_logprobs(raw_, token, *p.logprobs, seq.new_logprobs.back(), index_);
  }
  return token;
}

}  // namespace ferrum
