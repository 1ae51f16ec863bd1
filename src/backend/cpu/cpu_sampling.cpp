// The reference implementation of Backend::sample (backend/sampling.h), written plainly: the
// GPU kernel (cuda/cuda_sampling.cu) is tested against it, and it against the engine's host
// Sampler's distributions. Thresholds come from sorting here, from radix select there; both
// keep the same tokens up to the rounding of probability sums.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/sampling.h"
#include "core/error.h"

namespace ferrum::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The first index of the best score (NaN never wins); -1 if every score is NaN.
template <typename Score>
int32_t argmax(int64_t vocab, Score score) {
  int32_t best = -1;
  float best_v = kNegInf;
  for (int64_t i = 0; i < vocab; ++i) {
    const float v = score(i);
    if (v != v) continue;
    if (best < 0 || v > best_v) best = static_cast<int32_t>(i), best_v = v;
  }
  return best;
}

void raw_logprobs(const float* l, int64_t vocab, int32_t n, float* lse_out, std::vector<std::pair<float, int32_t>>& top) {
  const float mx = *std::max_element(l, l + vocab);
  float sum = 0.0f;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(l[i] - mx);
  *lse_out = mx + std::log(sum);
  top.clear();
  for (int64_t i = 0; i < vocab; ++i) top.emplace_back(l[i], static_cast<int32_t>(i));
  n = std::min<int32_t>(n, static_cast<int32_t>(vocab));
  std::partial_sort(top.begin(), top.begin() + n, top.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  top.resize(n);
}

void apply_edits(float* l, const LogitEdit* begin, const LogitEdit* end) {
  for (int32_t kind = LogitEdit::Mask; kind <= LogitEdit::Penalty; ++kind)
    for (const LogitEdit* e = begin; e != end; ++e) {
      if (e->kind != kind) continue;
      float& v = l[e->token];
      if (kind == LogitEdit::Mask) v = kNegInf;
      else if (kind == LogitEdit::Bias) v += e->value;
      else if (kind == LogitEdit::Repetition) v = v > 0.0f ? v / e->value : v * e->value;
      else v -= e->value;
    }
}

// temperature -> min_p -> top_k -> top_p, then the Gumbel-max draw.
int32_t draw(const float* l, int64_t vocab, const SampleRow& row, std::vector<float>& w,
             std::vector<int32_t>& cand) {
  const float inv_t = 1.0f / row.temperature;
  float mx = kNegInf;
  for (int64_t i = 0; i < vocab; ++i) mx = std::max(mx, l[i] * inv_t);
  if (!(mx > kNegInf)) return argmax(vocab, [&](int64_t i) { return l[i]; });
  w.assign(static_cast<size_t>(vocab), 0.0f);
  cand.clear();
  for (int64_t i = 0; i < vocab; ++i) {
    const float d = l[i] * inv_t - mx;
    if (!(d >= -87.0f)) continue;
    w[i] = std::exp(d);
    if (w[i] >= row.min_p) cand.push_back(static_cast<int32_t>(i));
  }
  auto by_value = [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
  float floor = kNegInf;  // scaled-logit threshold
  if (row.top_k > 0 && static_cast<size_t>(row.top_k) < cand.size()) {
    std::nth_element(cand.begin(), cand.begin() + (row.top_k - 1), cand.end(), by_value);
    floor = l[cand[row.top_k - 1]] * inv_t;
    std::erase_if(cand, [&](int32_t i) { return l[i] * inv_t < floor; });
  }
  if (row.top_p < 1.0f) {
    std::sort(cand.begin(), cand.end(), by_value);
    double total = 0.0;
    for (int32_t i : cand) total += w[i];
    const double target = static_cast<double>(row.top_p) * total;
    double cum = 0.0;
    for (int32_t i : cand) {
      cum += w[i];
      if (cum >= target) {
        floor = std::max(floor, l[i] * inv_t);
        break;
      }
    }
    std::erase_if(cand, [&](int32_t i) { return l[i] * inv_t < floor; });
  }
  int32_t best = -1;
  float best_v = kNegInf;
  for (int32_t i : cand) {
    const float u = sample_uniform(row.key, row.counter, static_cast<uint32_t>(i));
    const float v = l[i] * inv_t - std::log(-std::log(u));
    if (best < 0 || v > best_v || (v == best_v && i < best)) best = i, best_v = v;
  }
  return best >= 0 ? best : argmax(vocab, [&](int64_t i) { return l[i]; });
}

}  // namespace

void sample(Tensor& logits, const SampleBatch& batch, SampleResult& out) {
  const int64_t rows = static_cast<int64_t>(batch.rows.size()), vocab = logits.cols();
  FERRUM_CHECK(logits.dtype == DType::F32 && logits.rows() >= rows, "sample: logits {} for {} rows",
               logits.shape_str(), rows);
  out.tokens.assign(rows, -1);
  out.logprobs.assign(rows, 0.0f);
  out.top_ids.assign(rows * kMaxTopLogprobs, -1);
  out.top_logprobs.assign(rows * kMaxTopLogprobs, kNegInf);
  std::vector<std::pair<float, int32_t>> top;
  std::vector<float> w;
  std::vector<int32_t> cand;
  for (int64_t r = 0; r < rows; ++r) {
    const SampleRow& row = batch.rows[r];
    float* l = logits.ptr<float>() + r * vocab;
    const LogitEdit* eb = batch.edits.data() + row.edits_begin;
    const LogitEdit* ee = batch.edits.data() + row.edits_end;
    for (const LogitEdit* e = eb; e != ee; ++e)
      FERRUM_CHECK(e->token >= 0 && e->token < vocab, "sample: edit of token {} outside [0, {})", e->token, vocab);
    FERRUM_CHECK(row.mask < batch.num_masks() && (row.mask < 0 || batch.mask_words * int64_t{32} >= vocab),
                 "sample: row {} names mask {} of {} ({} words for {} tokens)", r, row.mask, batch.num_masks(),
                 batch.mask_words, vocab);
    float lse = 0.0f;
    std::vector<float> raw;
    if (row.num_logprobs >= 0) {
      raw_logprobs(l, vocab, std::min(row.num_logprobs, kMaxTopLogprobs), &lse, top);
      for (size_t j = 0; j < top.size(); ++j) {
        out.top_ids[r * kMaxTopLogprobs + j] = top[j].second;
        out.top_logprobs[r * kMaxTopLogprobs + j] = top[j].first - lse;
      }
      raw.assign(l, l + vocab);
    }
    apply_edits(l, eb, ee);
    if (row.mask >= 0) {
      const uint32_t* mask = batch.masks.data() + static_cast<size_t>(row.mask) * batch.mask_words;
      for (int64_t i = 0; i < vocab; ++i)
        if (!mask_allows(mask, i)) l[i] = kNegInf;
    }
    const int32_t token = row.temperature < kGreedyTemperature ? argmax(vocab, [&](int64_t i) { return l[i]; })
                                                                : draw(l, vocab, row, w, cand);
    out.tokens[r] = token;
    if (row.num_logprobs >= 0 && token >= 0) out.logprobs[r] = raw[token] - lse;
  }
}

}  // namespace ferrum::cpu
