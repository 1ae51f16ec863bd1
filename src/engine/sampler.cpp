#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ferrum {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kGreedyTemperature = 1e-5f;  // below this, temperature means greedy (vLLM)

int32_t argmax(std::span<const float> logits) {
  // The first maximum wins, as torch.argmax.
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

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

int32_t Sampler::sample_filtered(std::span<float> logits, const SamplingParams& p, std::mt19937_64& rng) {
  if (p.temperature < kGreedyTemperature) return argmax(logits);

  const float inv_t = 1.0f / p.temperature;
  float mx = kNegInf;
  for (float& l : logits) {
    l *= inv_t;
    mx = std::max(mx, l);
  }
  // Candidates: finite logits; min_p keeps p >= min_p * p_max, i.e. l >= mx + log(min_p).
  const float floor = p.min_p > 0.0f ? mx + std::log(p.min_p) : kNegInf;
  index_.clear();
  for (int32_t i = 0; i < static_cast<int32_t>(logits.size()); ++i)
    if (logits[i] > kNegInf && logits[i] >= floor) index_.push_back(i);
  if (index_.empty()) return argmax(logits);

  auto better = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < index_.size()) {
    std::nth_element(index_.begin(), index_.begin() + p.top_k, index_.end(), better);
    index_.resize(p.top_k);
  }
  if (p.top_p < 1.0f) {
    std::sort(index_.begin(), index_.end(), better);
    double total = 0.0;
    for (int32_t i : index_) total += std::exp(static_cast<double>(logits[i] - mx));
    // Keep the smallest head whose mass reaches top_p (at least one token).
    double cum = 0.0;
    size_t keep = 0;
    while (keep < index_.size()) {
      cum += std::exp(static_cast<double>(logits[index_[keep]] - mx)) / total;
      ++keep;
      if (cum >= p.top_p) break;
    }
    index_.resize(keep);
  }

  double total = 0.0;
  for (int32_t i : index_) total += std::exp(static_cast<double>(logits[i] - mx));
  const double target = uniform01(rng) * total;
  double cum = 0.0;
  for (int32_t i : index_) {
    cum += std::exp(static_cast<double>(logits[i] - mx));
    if (target < cum) return i;
  }
  return index_.back();  // rounding at the very top of the range
}

int32_t Sampler::sample(Sequence& seq, std::span<float> logits) {
  const SamplingParams& p = *seq.params;
  const bool want_logprobs = p.logprobs.has_value();
  if (want_logprobs) raw_.assign(logits.begin(), logits.end());

  // min_tokens: no stop token before it is reached.
  if (seq.num_output_tokens() < p.min_tokens) {
    for (int32_t t : p.stop_token_ids)
      if (t >= 0 && t < vocab_size_) logits[t] = kNegInf;
    if (!p.ignore_eos)
      for (int32_t t : eos_ids_)
        if (t >= 0 && t < vocab_size_) logits[t] = kNegInf;
  }
  for (const auto& [t, bias] : p.logit_bias)
    if (t >= 0 && t < vocab_size_) logits[t] += bias;
  apply_penalties(logits, seq.tokens, seq.output_counts, p, seen_);

  const int32_t token = sample_filtered(logits, p, seq.rng);
  if (want_logprobs) {
    seq.new_logprobs.emplace_back();
    compute_logprobs(raw_, token, *p.logprobs, seq.new_logprobs.back(), index_);
  }
  return token;
}

}  // namespace ferrum
