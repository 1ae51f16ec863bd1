// Reference distributions for the sampler tests (host Sampler and device sampling): which
// tokens survive temperature, min_p, top_k and top_p, and their probabilities, computed
// directly in double precision.
#pragma once
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>

#include "engine/sampling_params.h"

namespace ferrum::testing {

inline std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  std::vector<double> p(logits.size());
  double mx = *std::max_element(logits.begin(), logits.end()) / temperature, sum = 0;
  for (size_t i = 0; i < p.size(); ++i) sum += (p[i] = std::exp(logits[i] / temperature - mx));
  for (double& x : p) x /= sum;
  return p;
}

// HF-style reference: which tokens survive top_k, top_p and min_p, and their renormalized
// probabilities (vLLM v1 order: temperature, min_p, top_k, top_p).
inline std::vector<double> reference_distribution(const std::vector<float>& logits, const SamplingParams& sp) {
  std::vector<double> p = softmax(logits, sp.temperature);
  const double pmax = *std::max_element(p.begin(), p.end());
  std::vector<bool> keep(p.size(), true);
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] < sp.min_p * pmax) keep[i] = false;
  std::vector<size_t> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  if (sp.top_k > 0) {
    int kept = 0;
    for (size_t i : order)
      if (keep[i] && ++kept > sp.top_k) keep[i] = false;
  }
  if (sp.top_p < 1.0f) {
    double mass = 0;
    for (size_t i = 0; i < p.size(); ++i) mass += keep[i] ? p[i] : 0;
    double cum = 0;
    bool done = false;
    for (size_t i : order) {
      if (!keep[i]) continue;
      if (done) keep[i] = false;
      cum += p[i] / mass;
      if (cum >= sp.top_p) done = true;
    }
  }
  double total = 0;
  for (size_t i = 0; i < p.size(); ++i) total += keep[i] ? p[i] : 0;
  for (size_t i = 0; i < p.size(); ++i) p[i] = keep[i] ? p[i] / total : 0;
  return p;
}

inline std::vector<float> test_logits() {
  return {2.0f, 1.5f, 1.4f, 0.3f, -0.5f, 0.0f, -2.0f, 1.0f};
}

// Token counts of `draws` samples against the reference probabilities: filtered tokens never
// drawn, the others within 5 sigma.
inline void expect_frequencies(const std::vector<int>& counts, const std::vector<double>& ref, int draws) {
  for (size_t t = 0; t < ref.size(); ++t) {
    const double freq = static_cast<double>(counts[t]) / draws;
    if (ref[t] == 0) {
      EXPECT_EQ(counts[t], 0) << "token " << t << " should be filtered out";
    } else {
      const double sigma = std::sqrt(ref[t] * (1 - ref[t]) / draws);
      EXPECT_NEAR(freq, ref[t], 5 * sigma + 1e-3) << "token " << t;
    }
  }
}

// Filter settings every sampler must reproduce: top_k, top_p, min_p alone and all together.
inline std::vector<SamplingParams> filter_cases() {
  std::vector<SamplingParams> cases(4);
  cases[0].top_k = 3;
  cases[1].top_p = 0.6f;
  cases[2].min_p = 0.3f;
  cases[3].temperature = 0.8f;
  cases[3].top_k = 5;
  cases[3].top_p = 0.8f;
  cases[3].min_p = 0.05f;
  return cases;
}

}  // namespace ferrum::testing
