// ferrum bench serve: load-tests any OpenAI-compatible server (ferrum, vLLM, llama.cpp) over
// HTTP and reports throughput, TTFT, TPOT and ITL. The requests and their timing live in
// loadgen/; this file turns flags into request bodies and the measurements into a report.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <random>

#include "cli/commands.h"
#include "core/error.h"
#include "core/json.h"
#include "loadgen/client.h"
#include "loadgen/server_metrics.h"
#include "loadgen/stats.h"
#include "loadgen/url.h"

namespace ferrum::cli {
namespace {
using namespace ferrum::loadgen;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int32_t kMinTokenId = 100;    // skips the low ids where models keep special tokens
constexpr int32_t kMaxTokenId = 32000;  // every common vocabulary has at least this many ids

struct ServeBenchArgs {
  std::string url, model, endpoint = "completions", prompt_file, api_key, extra_body;
  int concurrency = 0;  // 0: not given
  int num_requests = 0; // 0: max(20, 4 * concurrency)
  int input_len = 256, output_len = 256, vocab_size = 32000, warmup = 1;
  double request_rate = kInf, timeout_s = 0;
  uint64_t seed = 0;
  bool json = false, quiet = false, no_ignore_eos = false;
};

std::vector<std::string> read_prompt_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("--prompt-file {}: cannot open it", path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (!l.empty()) lines.push_back(std::move(l));
  }
  if (lines.empty()) fail("--prompt-file {}: no non-empty lines", path);
  return lines;
}

// Request bodies: warm-up ones first, then the measured ones. Random-token prompts differ per
// request, so that a prefix cache cannot turn the benchmark into a cache benchmark.
std::vector<std::string> make_bodies(const ServeBenchArgs& a, size_t count) {
  json extra = json::object();
  if (!a.extra_body.empty()) {
    extra = json::parse(a.extra_body, nullptr, false);
    if (extra.is_discarded() || !extra.is_object()) fail("--extra-body must be a JSON object, got: {}", a.extra_body);
  }
  const bool chat = a.endpoint == "chat";
  std::vector<std::string> lines;
  if (!a.prompt_file.empty()) lines = read_prompt_lines(a.prompt_file);
  std::mt19937_64 rng(a.seed);
  std::uniform_int_distribution<int32_t> token(kMinTokenId, std::min(a.vocab_size, kMaxTokenId) - 1);
  std::vector<std::string> bodies;
  bodies.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    json b = {{"model", a.model}, {"max_tokens", a.output_len}, {"stream", true},
              {"stream_options", {{"include_usage", true}}}};
    if (!a.no_ignore_eos) b["ignore_eos"] = true;
    if (chat) {
      b["messages"] = json::array({{{"role", "user"}, {"content", lines[i % lines.size()]}}});
    } else if (!lines.empty()) {
      b["prompt"] = lines[i % lines.size()];
    } else {
      std::vector<int32_t> ids(static_cast<size_t>(a.input_len));
      for (auto& id : ids) id = token(rng);
      b["prompt"] = ids;
    }
    b.merge_patch(extra);
    bodies.push_back(b.dump());
  }
  return bodies;
}

// A bar redrawn in place on a terminal; otherwise a line every few seconds (logs stay short).
std::function<void(const Progress&)> progress_printer(bool tty) {
  return [tty](const Progress& p) {
    const size_t done = p.completed + p.failed;
    if (tty) {
      const int width = 30;
      const int filled = p.total ? static_cast<int>(width * done / p.total) : width;
      std::fprintf(stderr, "\r[%s%s] %zu/%zu done, %zu failed, %zu in flight, %.1f s ", std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(), done, p.total, p.failed, p.in_flight, p.elapsed_s);
      if (p.final) std::fprintf(stderr, "\n");
    } else {
      std::fprintf(stderr, "progress: %zu/%zu done, %zu failed, %zu in flight, %.1f s\n", done, p.total, p.failed,
                   p.in_flight, p.elapsed_s);
    }
    std::fflush(stderr);
  };
}

// A 50-column rule with the title in its middle.
void print_banner(const std::string& title, char fill) {
  const std::string t = title.empty() ? title : " " + title + " ";
  const size_t pad = t.size() < 50 ? 50 - t.size() : 0;
  std::printf("%s%s%s\n", std::string(pad / 2, fill).c_str(), t.c_str(), std::string(pad - pad / 2, fill).c_str());
}

void print_distribution(const char* title, const char* name, const Distribution& d) {
  print_banner(title, '-');
  std::printf("%-40s %10.2f\n", fmt::format("Mean {} (ms):", name).c_str(), d.mean);
  std::printf("%-40s %10.2f\n", fmt::format("Median {} (ms):", name).c_str(), d.p50);
  std::printf("%-40s %10.2f\n", fmt::format("P90 {} (ms):", name).c_str(), d.p90);
  std::printf("%-40s %10.2f\n", fmt::format("P99 {} (ms):", name).c_str(), d.p99);
}

// Speculative decoding over the measured run, from the server's /metrics counters (ferrum's
// or vLLM's); unset when the server reports none.
struct SpecDecodeResult {
  bool known = false;
  double drafts = 0, draft_tokens = 0, accepted_tokens = 0;
  double acceptance_rate() const { return draft_tokens > 0 ? accepted_tokens / draft_tokens : 0.0; }
  double mean_accepted_length() const { return drafts > 0 ? 1.0 + accepted_tokens / drafts : 0.0; }
};

std::optional<SpecDecodeCounters> read_spec_counters(const ServerUrl& server, const std::string& api_key) {
  const auto text = fetch_metrics(server, api_key);
  return text ? parse_spec_decode_counters(*text) : std::nullopt;
}

void print_table(const ServeBenchArgs& a, const RunMetrics& m, int peak, const SpecDecodeResult& spec) {
  auto row = [](const char* k, const std::string& v) { std::printf("%-40s %10s\n", k, v.c_str()); };
  print_banner("Serving Benchmark Result", '=');
  row("Successful requests:", std::to_string(m.completed));
  row("Failed requests:", std::to_string(m.failed));
  row("Maximum requests in flight:", std::to_string(peak));
  row("Request rate (req/s):", std::isinf(a.request_rate) ? "inf" : fmt::format("{:.2f}", a.request_rate));
  row("Benchmark duration (s):", fmt::format("{:.2f}", m.duration));
  row("Total input tokens:", std::to_string(m.total_input_tokens));
  row("Total generated tokens:", std::to_string(m.total_output_tokens));
  row("Request throughput (req/s):", fmt::format("{:.2f}", m.req_s));
  row("Input token throughput (tok/s):", fmt::format("{:.2f}", m.in_tok_s));
  row("Output token throughput (tok/s):", fmt::format("{:.2f}", m.out_tok_s));
  row("Total token throughput (tok/s):", fmt::format("{:.2f}", m.total_tok_s));
  if (spec.known && spec.draft_tokens > 0) {
    row("Spec decode acceptance rate:", fmt::format("{:.3f}", spec.acceptance_rate()));
    row("Spec decode mean accepted length:", fmt::format("{:.2f}", spec.mean_accepted_length()));
    row("Spec decode drafted tokens:", fmt::format("{:.0f}", spec.draft_tokens));
  }
  print_distribution("Time to First Token", "TTFT", m.ttft_ms);
  print_distribution("Time per Output Token (excl. 1st token)", "TPOT", m.tpot_ms);
  print_distribution("Inter-token Latency", "ITL", m.itl_ms);
  print_distribution("End-to-end Latency", "E2EL", m.e2el_ms);
  print_banner("", '=');
  if (!m.errors.empty()) {
    std::printf("Failures:\n");
    for (const auto& [msg, n] : m.errors) std::printf("  %5lld x %s\n", static_cast<long long>(n), msg.c_str());
  }
  std::fflush(stdout);
}

json metrics_json(const ServeBenchArgs& a, const RunMetrics& m, int num_requests, int peak, const SpecDecodeResult& spec) {
  json j = {{"url", a.url}, {"model", a.model}, {"endpoint", a.endpoint},
            {"num_requests", num_requests}, {"completed", m.completed}, {"failed", m.failed},
            // The in-flight cap: C (1 by default) in a closed loop; in an open loop C or null (none).
            {"concurrency", a.concurrency > 0 ? json(a.concurrency) : std::isinf(a.request_rate) ? json(1) : json(nullptr)},
            {"max_in_flight", peak},
            {"request_rate", std::isinf(a.request_rate) ? json("inf") : json(a.request_rate)},
            {"input_len", a.prompt_file.empty() ? json(a.input_len) : json(nullptr)},
            {"output_len", a.output_len}, {"ignore_eos", !a.no_ignore_eos}, {"warmup", a.warmup}, {"seed", a.seed},
            {"duration_s", m.duration}, {"total_input_tokens", m.total_input_tokens},
            {"total_output_tokens", m.total_output_tokens}, {"req_s", m.req_s}, {"in_tok_s", m.in_tok_s},
            {"out_tok_s", m.out_tok_s}, {"total_tok_s", m.total_tok_s}};
  auto put = [&](const char* name, const Distribution& d) {
    const std::string n = name;
    j[n + "_mean_ms"] = d.mean;
    j[n + "_std_ms"] = d.stddev;
    j[n + "_min_ms"] = d.min;
    j[n + "_max_ms"] = d.max;
    j[n + "_p50_ms"] = d.p50;
    j[n + "_p90_ms"] = d.p90;
    j[n + "_p95_ms"] = d.p95;
    j[n + "_p99_ms"] = d.p99;
  };
  put("ttft", m.ttft_ms);
  put("tpot", m.tpot_ms);
  put("itl", m.itl_ms);
  put("e2el", m.e2el_ms);
  j["errors"] = m.errors;
  // Added keys (null when the server reports no speculative decoding counters).
  const bool spec_on = spec.known && spec.draft_tokens > 0;
  j["spec_decode_acceptance_rate"] = spec_on ? json(spec.acceptance_rate()) : json(nullptr);
  j["spec_decode_mean_accepted_length"] = spec_on ? json(spec.mean_accepted_length()) : json(nullptr);
  j["spec_decode_draft_tokens"] = spec.known ? json(spec.draft_tokens) : json(nullptr);
  j["spec_decode_accepted_tokens"] = spec.known ? json(spec.accepted_tokens) : json(nullptr);
  return j;
}

int run_bench_serve(ServeBenchArgs a) {
  const ServerUrl server = parse_server_url(a.url);
  if (a.endpoint != "completions" && a.endpoint != "chat")
    fail("--endpoint must be 'completions' or 'chat', got '{}'", a.endpoint);
  if (a.endpoint == "chat" && a.prompt_file.empty())
    fail("--endpoint chat needs --prompt-file: random-token prompts can only be sent to /v1/completions");
  if (a.prompt_file.empty() && a.vocab_size <= kMinTokenId)
    fail("--vocab-size must be above {} (random token ids are drawn from [{}, min(vocab, {})))", kMinTokenId, kMinTokenId, kMaxTokenId);
  if (!(a.request_rate > 0)) fail("--request-rate must be positive (omit it for a closed loop)");
  if (a.api_key.empty())
    if (const char* k = std::getenv("FERRUM_API_KEY")) a.api_key = k;

  const int conc = a.concurrency > 0 ? a.concurrency : 1;
  const int n = a.num_requests > 0 ? a.num_requests : std::max(20, 4 * conc);
  std::vector<std::string> bodies = make_bodies(a, static_cast<size_t>(a.warmup + n));
  std::vector<std::string> warm(bodies.begin(), bodies.begin() + a.warmup);
  bodies.erase(bodies.begin(), bodies.begin() + a.warmup);

  LoadOptions o;
  o.server = server;
  o.path = a.endpoint == "chat" ? "/v1/chat/completions" : "/v1/completions";
  o.api_key = a.api_key;
  o.timeout_s = a.timeout_s;
  o.seed = a.seed;

  if (!warm.empty()) {
    if (!a.quiet) std::fprintf(stderr, "warm-up: %zu request(s) to %s%s%s\n", warm.size(), a.url.c_str(), server.base_path.c_str(), o.path.c_str());
    o.max_in_flight = conc;
    LoadOutcome w = run_load(o, warm);
    for (const auto& r : w.results) {
      if (r.ok) continue;
      if (r.connect_failed) fail("cannot reach the server: {}", r.error);
      std::fprintf(stderr, "warning: a warm-up request failed: %s\n", r.error.c_str());
    }
  }

  // Closed loop: exactly C in flight. Open loop: Poisson arrivals, capped by -c when given.
  o.max_in_flight = std::isinf(a.request_rate) ? conc : a.concurrency;
  o.request_rate = a.request_rate;
  if (!a.quiet) {
    const bool tty = isatty(STDERR_FILENO);
    o.on_progress = progress_printer(tty);
    o.progress_interval_s = tty ? 0.1 : 5.0;
  }
  const auto spec_before = read_spec_counters(server, a.api_key);
  LoadOutcome out = run_load(o, bodies);
  const auto spec_after = spec_before ? read_spec_counters(server, a.api_key) : std::nullopt;
  SpecDecodeResult spec;
  if (spec_before && spec_after) {
    spec.known = true;
    spec.drafts = spec_after->drafts - spec_before->drafts;
    spec.draft_tokens = spec_after->draft_tokens - spec_before->draft_tokens;
    spec.accepted_tokens = spec_after->accepted_tokens - spec_before->accepted_tokens;
  }
  const RunMetrics m = aggregate(out.results, out.duration_s, a.prompt_file.empty() ? a.input_len : -1);
  print_table(a, m, out.peak_in_flight, spec);
  if (a.json) std::printf("%s\n", metrics_json(a, m, n, out.peak_in_flight, spec).dump().c_str());
  std::fflush(stdout);
  if (m.completed == 0) {
    std::fprintf(stderr, "error: no request completed (%s)\n",
                 m.errors.empty() ? "no requests" : m.errors.begin()->first.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

CLI::App* register_bench_serve(CLI::App& bench, Action& action) {
  auto a = std::make_shared<ServeBenchArgs>();
  auto* cmd = bench.add_subcommand("serve", "Load-test an OpenAI-compatible server (ferrum, vLLM, llama.cpp) over HTTP");
  action = [a] { return run_bench_serve(*a); };
  cmd->add_option("--url", a->url, "Server address, http://HOST:PORT (a trailing /v1 is fine; no https)")->required();
  cmd->add_option("--model", a->model, "Model name sent in each request (the server's served name)")->required();
  cmd->add_option("-c,--concurrency", a->concurrency,
                  "Requests in flight: exactly C in a closed loop (default 1); with --request-rate, at most C (default: no cap)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("-n,--num-requests", a->num_requests, "Measured requests (default: max(20, 4 x C))")->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--input-len", a->input_len, "Random-token prompt length")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  cmd->add_option("--output-len", a->output_len, "max_tokens of each request")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  cmd->add_option("--request-rate", a->request_rate, "Poisson arrivals at R requests/s (default inf: closed loop)");
  cmd->add_option("--vocab-size", a->vocab_size, "Random token ids are drawn from [100, min(V, 32000))")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed of the random prompts and arrival times")->capture_default_str();
  cmd->add_option("--prompt-file", a->prompt_file, "Text prompts, one per line, used in turn (instead of random tokens)");
  cmd->add_option("--endpoint", a->endpoint, "completions (/v1/completions) or chat (/v1/chat/completions; needs --prompt-file)")
      ->capture_default_str();
  cmd->add_option("--warmup", a->warmup, "Unmeasured requests sent first")->check(CLI::Range(0, 1 << 20))->capture_default_str();
  cmd->add_option("--timeout", a->timeout_s, "Per-request timeout in seconds (0 = none)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--api-key", a->api_key, "Sent as 'Authorization: Bearer KEY' (default: $FERRUM_API_KEY)");
  cmd->add_option("--extra-body", a->extra_body, "JSON object merged into every request body");
  cmd->add_flag("--no-ignore-eos", a->no_ignore_eos, "Do not send ignore_eos: true (outputs may end before --output-len)");
  cmd->add_flag("--json", a->json, "End stdout with the results as one line of JSON");
  cmd->add_flag("-q,--quiet", a->quiet, "No progress on stderr");
  return cmd;
}

}  // namespace ferrum::cli
