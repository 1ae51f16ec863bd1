// ferrum serve [MODEL]: the OpenAI-compatible HTTP server. Listens at once (/health answers
// 503 while the model loads), logs one line with the URL when ready, and on SIGTERM/SIGINT
// stops accepting, lets running requests finish (up to --drain-timeout) and exits 0.
#include <cstdlib>
#include <signal.h>
#include <sys/resource.h>

#include <chrono>
#include <future>
#include <thread>

#include "cli/commands.h"
#include "cli/spec_args.h"
#include "core/error.h"
#include "core/log.h"
#include "server/access.h"
#include "server/http_server.h"
#include "cli/default_model.h"
#include "server/model_loader.h"
#include "server/openai_server.h"

namespace ferrum::cli {
namespace {

struct ServeArgs {
  std::string model;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key, cors_origin, chat_template, kv_cache_memory = "auto", device = "cpu";
  std::vector<std::string> served_names;
  std::string dummy, quantization, kv_cache_dtype = "auto";
  // 0: by device (server::default_engine_limits).
  int max_model_len = 0, max_num_seqs = 0, max_num_batched_tokens = 0, threads = 0, io_threads = 2;
  int max_waiting = 4096, drain_timeout = 30;
  std::string max_body = "16MiB";
  SpecArgs spec;
};

// Lets as many connections open as the hard limit allows (each needs a descriptor).
void raise_open_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int run_serve(ServeArgs a) {
  if (a.model.empty()) {  // no MODEL: the bundled ferrum-tiny, served under its own name
    a.model = default_model_dir();
    if (a.served_names.empty()) a.served_names = {"ferrum-tiny"};
  }
  // Signals are taken by one thread with sigwait; every other thread inherits the block.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  raise_open_file_limit();

  server::default_engine_limits(a.device, &a.max_num_seqs, &a.max_num_batched_tokens);
  server::OpenAiOptions api_options;
  api_options.api_key = a.api_key;
  api_options.cors_origin = a.cors_origin;
  api_options.max_jobs = static_cast<size_t>(a.max_waiting + a.max_num_seqs);
  server::OpenAiServer api(api_options);

  server::HttpServerOptions http_options;
  http_options.host = a.host;
  http_options.port = a.port;
  http_options.io_threads = a.io_threads;
  http_options.max_body_bytes = server::parse_byte_size(a.max_body);
  server::HttpServer http(http_options, [&api](server::HttpRequest r, std::shared_ptr<server::ResponseWriter> w) {
    api.handle(std::move(r), std::move(w));
  });
  http.start();
  if (a.api_key.empty() && !server::is_loopback_host(a.host))
    log::warn("listening on {} without --api-key: anyone who can reach this address can use the model "
              "(set --api-key, or bind 127.0.0.1)", a.host);
  std::string host = a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host;
  std::string url = fmt::format("http://{}:{}", host, http.port());
  log::info("listening on {} (loading the model; /health answers 503 until it is ready)", url);

  std::promise<int> signalled;
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    signalled.set_value(sig);
  });
  auto stop_signal_thread = [&] {
    pthread_kill(signal_thread.native_handle(), SIGTERM);  // wakes sigwait if still waiting
    signal_thread.join();
  };
  auto signal_future = signalled.get_future();

  std::shared_ptr<server::ServingContext> ctx;
  try {
    server::ModelLoadOptions lo;
    lo.model = a.model;
    lo.served_names = a.served_names;
    lo.chat_template_file = a.chat_template;
    lo.threads = a.threads;
    lo.device = a.device;
    lo.quantization = a.quantization;
    lo.kv_cache_dtype = a.kv_cache_dtype;
    lo.dummy = a.dummy;
    lo.engine.max_model_len = a.max_model_len;
    lo.engine.max_num_seqs = a.max_num_seqs;
    lo.engine.max_num_batched_tokens = a.max_num_batched_tokens;
    lo.kv_cache_auto = a.kv_cache_memory == "auto";
    if (!lo.kv_cache_auto) lo.engine.kv_cache_bytes = server::parse_byte_size(a.kv_cache_memory);
    lo.engine.max_waiting = a.max_waiting;
    lo.engine.speculative = a.spec.options();
    lo.spec_draft = a.spec.draft;
    // For comparisons: the GPU's engine path on the CPU (the model's reference sampler,
    // overlapped steps), and the host's on a GPU (logits copied back, no overlap).
    lo.engine.model_sampling = std::getenv("FERRUM_MODEL_SAMPLING") != nullptr;
    lo.engine.host_sampling = std::getenv("FERRUM_HOST_SAMPLING") != nullptr;
    ctx = server::load_serving_context(lo);
  } catch (...) {
    http.stop();
    stop_signal_thread();
    throw;
  }
  api.set_context(ctx);
  log::info("ferrum is ready: serving '{}' at {}/v1 (context {} tokens{})", ctx->model_names.front(), url,
            ctx->max_model_len, a.api_key.empty() ? "" : ", API key required");

  int sig = signal_future.get();
  signal_thread.join();
  log::info("received {}: no new connections; finishing {} running request(s) (up to {} s)",
            sig == SIGINT ? "SIGINT" : "SIGTERM", api.running_requests(), a.drain_timeout);
  http.begin_drain();
  // Running requests end when their last byte is written, not when generation ends.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(a.drain_timeout);
  while ((api.running_requests() > 0 || http.active_requests() > 0) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (api.running_requests() > 0 || http.active_requests() > 0)
    log::warn("{} request(s) still running after {} s; aborting them", http.active_requests(), a.drain_timeout);
  ctx->engine->shutdown();  // remaining streams end with finish_reason "abort"
  api.wait_idle();
  http.stop();
  log::info("stopped");
  return 0;
}

}  // namespace

void register_serve(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  auto* cmd = add_command(app, "serve", "Serve a model over an OpenAI-compatible HTTP API", [a] { return run_serve(*a); });
  cmd->add_option("model", a->model, "Model folder, or Hugging Face repo id ORG/NAME[:REVISION] (default: the bundled ferrum-tiny)")->envname("FERRUM_MODEL");
  cmd->add_option("--host", a->host, "Address to listen on")->envname("FERRUM_HOST")->capture_default_str();
  cmd->add_option("--port", a->port, "Port to listen on (0: any free port)")->envname("FERRUM_PORT")->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--api-key", a->api_key, "Require 'Authorization: Bearer KEY' on every route but /health")->envname("FERRUM_API_KEY");
  cmd->add_option("--served-model-name", a->served_names, "Model name(s) clients use (default: MODEL)")->envname("FERRUM_SERVED_MODEL_NAME");
  cmd->add_option("--max-model-len", a->max_model_len, "Context length (default: the model's)")->envname("FERRUM_MAX_MODEL_LEN")->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-num-seqs", a->max_num_seqs, "Sequences run together (default: 64 on the CPU, 256 on a GPU)")->envname("FERRUM_MAX_NUM_SEQS")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--max-num-batched-tokens", a->max_num_batched_tokens, "Token budget of one step (default: 128 per core, 256 to 2048, on the CPU; 8192 on a GPU)")->envname("FERRUM_MAX_NUM_BATCHED_TOKENS")->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--dummy", a->dummy, "Random weights of this dtype (bf16, f16, f32) filled in place instead of the files, for benchmarks (as vLLM's --load-format dummy)")->envname("FERRUM_DUMMY")->check(CLI::IsMember({"bf16", "f16", "f32"}));
  cmd->add_option("--kv-cache-memory", a->kv_cache_memory, "Memory for the KV cache (e.g. 4GiB); auto: 512MiB on the CPU, most of the free GPU memory on a GPU")->envname("FERRUM_KV_CACHE_MEMORY")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads for the model (default: all cores)")->envname("FERRUM_THREADS")->check(CLI::NonNegativeNumber);
  cmd->add_option("--quantization", a->quantization, "Quantize dense weights at load: fp8 (E4M3, per-channel scales; a GPU runs it)")->check(CLI::IsMember({"none", "fp8"}));
  add_kv_cache_dtype_option(cmd, a->kv_cache_dtype);
  cmd->add_option("--device", a->device, "Where the model runs: cpu, cuda or cuda:N")->envname("FERRUM_DEVICE")->capture_default_str();
  cmd->add_option("--chat-template", a->chat_template, "Jinja chat template file (default: the model's)")->envname("FERRUM_CHAT_TEMPLATE");
  cmd->add_option("--cors-origin", a->cors_origin, "Allowed browser origin(s): '*' or a comma-separated list")->envname("FERRUM_CORS_ORIGIN");
  cmd->add_option("--max-waiting", a->max_waiting, "Waiting requests before 503")->envname("FERRUM_MAX_WAITING")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  cmd->add_option("--max-body-size", a->max_body, "Largest request body")->envname("FERRUM_MAX_BODY_SIZE")->capture_default_str();
  cmd->add_option("--io-threads", a->io_threads, "HTTP I/O threads")->envname("FERRUM_IO_THREADS")->check(CLI::Range(1, 64))->capture_default_str();
  add_spec_options(cmd, a->spec);
  cmd->add_option("--drain-timeout", a->drain_timeout, "Seconds to let running requests finish on SIGTERM")->envname("FERRUM_DRAIN_TIMEOUT")->check(CLI::Range(0, 3600))->capture_default_str();
}

}  // namespace ferrum::cli
