#include "loadgen/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace ferrum::loadgen {

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - static_cast<double>(lo));
}

Distribution distribution(std::vector<double> v) {
  Distribution d;
  if (v.empty()) return d;
  std::sort(v.begin(), v.end());
  d.count = v.size();
  d.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double sq = 0;
  for (double x : v) sq += (x - d.mean) * (x - d.mean);
  d.stddev = std::sqrt(sq / static_cast<double>(v.size()));  // population, as numpy's std
  d.min = v.front();
  d.max = v.back();
  d.p50 = percentile(v, 50);
  d.p90 = percentile(v, 90);
  d.p95 = percentile(v, 95);
  d.p99 = percentile(v, 99);
  return d;
}

RunMetrics aggregate(const std::vector<RequestResult>& results, double duration, int64_t fallback_input_tokens) {
  RunMetrics m;
  m.duration = duration;
  std::vector<double> ttft, tpot, itl, e2el;
  for (const auto& r : results) {
    if (!r.ok) {
      ++m.failed;
      ++m.errors[r.error.empty() ? "unknown error" : r.error];
      continue;
    }
    ++m.completed;
    m.total_output_tokens += r.output_tokens;
    if (r.prompt_tokens >= 0) m.total_input_tokens += r.prompt_tokens;
    else if (fallback_input_tokens >= 0) m.total_input_tokens += fallback_input_tokens;
    ttft.push_back(r.ttft * 1e3);
    e2el.push_back(r.latency * 1e3);
    if (r.output_tokens > 1) tpot.push_back((r.latency - r.ttft) * 1e3 / static_cast<double>(r.output_tokens - 1));
    for (double g : r.itl) itl.push_back(g * 1e3);
  }
  if (duration > 0) {
    m.req_s = static_cast<double>(m.completed) / duration;
    m.in_tok_s = static_cast<double>(m.total_input_tokens) / duration;
    m.out_tok_s = static_cast<double>(m.total_output_tokens) / duration;
    m.total_tok_s = m.in_tok_s + m.out_tok_s;
  }
  m.ttft_ms = distribution(std::move(ttft));
  m.tpot_ms = distribution(std::move(tpot));
  m.itl_ms = distribution(std::move(itl));
  m.e2el_ms = distribution(std::move(e2el));
  return m;
}

}  // namespace ferrum::loadgen
