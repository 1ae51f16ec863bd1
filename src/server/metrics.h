// Server metrics in Prometheus text format: request counters, latency histograms (time to
// first token, time per output token, end to end) and the engine's gauges and counters.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace ferrum::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // name_bucket{le=...}, name_sum, name_count lines, preceded by HELP and TYPE.
  std::string render(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative); last = +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void request_finished(const std::string& finish_reason);  // one per choice
  void http_response(int status);
  Histogram ttft, tpot, e2e;

  // All metrics; engine gauges from stats (nullptr while the model loads).
  std::string render(const EngineStats* stats) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, uint64_t> finished_;
  std::map<int, uint64_t> http_status_;
};

}  // namespace ferrum::server
