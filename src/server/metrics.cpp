#include "server/metrics.h"

#include <fmt/format.h>

namespace ferrum::server {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  std::lock_guard lock(mutex_);
  ++counts_[i];
  sum_ += value;
  ++count_;
}

std::string Histogram::render(const std::string& name, const std::string& help) const {
  std::lock_guard lock(mutex_);
  std::string out = fmt::format("# HELP {0} {1}\n# TYPE {0} histogram\n", name, help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  cumulative += counts_.back();
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, cumulative, name, sum_, name, count_);
  return out;
}

Metrics::Metrics()
    : ttft({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80}),
      tpot({0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5}),
      e2e({0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240}) {}

void Metrics::request_finished(const std::string& finish_reason) {
  std::lock_guard lock(mutex_);
  ++finished_[finish_reason];
}

void Metrics::http_response(int status) {
  std::lock_guard lock(mutex_);
  ++http_status_[status];
}

namespace {
void gauge(std::string& out, const char* name, const char* help, double v) {
  out += fmt::format("# HELP {0} {1}\n# TYPE {0} gauge\n{0} {2}\n", name, help, v);
}
void counter(std::string& out, const char* name, const char* help, uint64_t v) {
  out += fmt::format("# HELP {0} {1}\n# TYPE {0} counter\n{0} {2}\n", name, help, v);
}
}  // namespace

std::string Metrics::render(const EngineStats* s) const {
  std::string out;
  if (s) {
    gauge(out, "ferrum_num_requests_running", "Requests being generated.", s->running);
    gauge(out, "ferrum_num_requests_waiting", "Requests waiting to be scheduled.", s->waiting);
    gauge(out, "ferrum_kv_cache_blocks_total", "KV cache blocks in the pool.", s->kv_blocks_total);
    gauge(out, "ferrum_kv_cache_blocks_used", "KV cache blocks in use.", s->kv_blocks_used);
    gauge(out, "ferrum_kv_cache_usage_perc", "Fraction of KV cache blocks in use.",
          s->kv_blocks_total > 0 ? double(s->kv_blocks_used) / s->kv_blocks_total : 0.0);
    counter(out, "ferrum_prompt_tokens_total", "Prompt tokens processed.", s->prompt_tokens);
    counter(out, "ferrum_generation_tokens_total", "Tokens generated.", s->generated_tokens);
    counter(out, "ferrum_prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.", s->prefix_cache_queries);
    counter(out, "ferrum_prefix_cache_hits_total", "Prompt tokens found in the prefix cache.", s->prefix_cache_hits);
    gauge(out, "ferrum_prefix_cache_hit_rate", "Prefix cache hits over queries, in tokens.",
          s->prefix_cache_queries > 0 ? double(s->prefix_cache_hits) / double(s->prefix_cache_queries) : 0.0);
    counter(out, "ferrum_num_preemptions_total", "Requests preempted for lack of KV blocks.", s->preemptions);
    counter(out, "ferrum_spec_decode_num_drafts_total", "Speculative verifications with at least one proposed token.",
            s->spec_drafts);
    counter(out, "ferrum_spec_decode_num_draft_tokens_total", "Tokens proposed for speculative verification.",
            s->spec_draft_tokens);
    counter(out, "ferrum_spec_decode_num_accepted_tokens_total", "Proposed tokens accepted by the target.",
            s->spec_accepted_tokens);
    gauge(out, "ferrum_spec_decode_acceptance_rate", "Accepted over proposed tokens.",
          s->spec_draft_tokens > 0 ? double(s->spec_accepted_tokens) / double(s->spec_draft_tokens) : 0.0);
    gauge(out, "ferrum_spec_decode_mean_accepted_length",
          "Tokens per target pass of a speculating sequence: 1 + accepted / drafts.",
          s->spec_drafts > 0 ? 1.0 + double(s->spec_accepted_tokens) / double(s->spec_drafts) : 0.0);
    counter(out, "ferrum_steps_device_sampled_total", "Engine steps whose tokens the model's own sampler picked.",
            s->device_sampled_steps);
    counter(out, "ferrum_steps_overlapped_total",
            "Device-sampled steps launched while the step before was still running.", s->overlapped_steps);
    counter(out, "ferrum_steps_host_sampled_total", "Engine steps whose tokens were picked on the host from logits.",
            s->host_sampled_steps);
  }
  {
    std::lock_guard lock(mutex_);
    out += "# HELP ferrum_request_success_total Finished completions by finish reason.\n"
           "# TYPE ferrum_request_success_total counter\n";
    for (auto& [reason, n] : finished_) out += fmt::format("ferrum_request_success_total{{finished_reason=\"{}\"}} {}\n", reason, n);
    out += "# HELP ferrum_http_responses_total HTTP responses by status code.\n"
           "# TYPE ferrum_http_responses_total counter\n";
    for (auto& [status, n] : http_status_) out += fmt::format("ferrum_http_responses_total{{status=\"{}\"}} {}\n", status, n);
  }
  out += ttft.render("ferrum_time_to_first_token_seconds", "Time from arrival to the first generated token.");
  out += tpot.render("ferrum_time_per_output_token_seconds", "Time between generated tokens.");
  out += e2e.render("ferrum_e2e_request_latency_seconds", "Time from arrival to the last token.");
  return out;
}

}  // namespace ferrum::server
