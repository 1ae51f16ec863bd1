// What one benchmark request measured, and the aggregate statistics over a run (the metrics
// vLLM's `bench serve` reports, with the same definitions).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ferrum::loadgen {

// Times are seconds on steady_clock, relative to the request's send.
struct RequestResult {
  bool ok = false;
  std::string error;          // why it failed (empty when ok)
  bool connect_failed = false;  // never reached the server (refused, unreachable, resolve)
  double ttft = 0;            // until the first chunk with generated text
  double latency = 0;         // until the end of the response
  std::vector<double> itl;    // gaps between successive chunks with text
  int64_t output_tokens = 0;  // usage.completion_tokens when the server sent it, else chunks with text
  int64_t prompt_tokens = -1; // usage.prompt_tokens, -1 when the server did not say
};

// Linear interpolation between closest ranks (numpy's default): the p-th percentile of n
// sorted values sits at rank p/100 * (n-1). 0 for no values.
double percentile(const std::vector<double>& sorted, double p);

struct Distribution {
  size_t count = 0;
  double mean = 0, stddev = 0, min = 0, max = 0, p50 = 0, p90 = 0, p95 = 0, p99 = 0;  // 0 when empty
};
Distribution distribution(std::vector<double> values);

struct RunMetrics {
  int64_t completed = 0, failed = 0;
  double duration = 0;  // seconds from the first send to the last response
  int64_t total_input_tokens = 0, total_output_tokens = 0;
  double req_s = 0, in_tok_s = 0, out_tok_s = 0, total_tok_s = 0;
  // Milliseconds. TTFT and end-to-end latency per completed request; TPOT per completed
  // request with more than one output token: (latency - TTFT) / (output tokens - 1);
  // ITL over every gap between chunks of every completed request.
  Distribution ttft_ms, tpot_ms, itl_ms, e2el_ms;
  std::map<std::string, int64_t> errors;  // failure message -> count
};

// `fallback_input_tokens` counts a completed request's prompt when the server sent no usage
// (-1: count nothing).
RunMetrics aggregate(const std::vector<RequestResult>& results, double duration, int64_t fallback_input_tokens);

}  // namespace ferrum::loadgen
