// The server's Prometheus /metrics, read before and after a `ferrum bench serve` run to report
// what only the server knows: speculative decoding's acceptance (ferrum's
// ferrum_spec_decode_* and vLLM's vllm:spec_decode_* counters).
#pragma once
#include <optional>
#include <string>

#include "loadgen/url.h"

namespace ferrum::loadgen {

struct SpecDecodeCounters {
  double drafts = 0, draft_tokens = 0, accepted_tokens = 0;
};

// GET base_path + /metrics; nullopt when the server has none (or cannot be reached).
std::optional<std::string> fetch_metrics(const ServerUrl& server, const std::string& api_key, double timeout_s = 5);

// The speculative decoding counters in a /metrics text; nullopt when it has none.
std::optional<SpecDecodeCounters> parse_spec_decode_counters(const std::string& metrics_text);

}  // namespace ferrum::loadgen
