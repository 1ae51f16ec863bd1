// The OpenAI-compatible API over HttpServer: routing, API key, CORS, health and metrics, and
// the generation and token routes, which run as WorkerPool tasks against the engine's API only.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/chat_formatter.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/worker_pool.h"

namespace ferrum {
class Tokenizer;
}

namespace ferrum::server {

// Everything a loaded model brings; the server answers 503 until it has one.
struct ServingContext {
  std::shared_ptr<Engine> engine;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::shared_ptr<const ChatFormatter> chat;  // null: /v1/chat/completions answers 400
  std::vector<std::string> model_names;       // the first is reported in responses
  int32_t max_model_len = 0;
  int64_t created = 0;                        // unix time the model was loaded
};

struct OpenAiOptions {
  std::string api_key;      // empty: no authentication
  std::string cors_origin;  // empty: no CORS headers; "*" or a comma-separated list
  size_t max_jobs = 4096;   // concurrent generation and token requests before 503
  size_t worker_threads = 4;  // parse, render templates, tokenize
  size_t stream_threads = 4;  // turn engine outputs into response bytes
  int retry_after_s = 1;
};

class OpenAiServer {
 public:
  explicit OpenAiServer(OpenAiOptions options);
  ~OpenAiServer();  // waits for running requests

  void set_context(std::shared_ptr<ServingContext> ctx);  // the model is ready
  std::shared_ptr<ServingContext> context() const;

  // The HttpServer handler.
  void handle(HttpRequest request, std::shared_ptr<ResponseWriter> writer);

  // Generation and token requests accepted and not yet answered.
  size_t running_requests() const { return slots_.in_use(); }
  bool wait_idle(long timeout_ms = -1) { return slots_.wait_idle(timeout_ms); }
  WorkerPool& stream_workers() { return stream_workers_; }
  Metrics& metrics() { return metrics_; }
  const OpenAiOptions& options() const { return options_; }

  // Extra headers every response carries (CORS), for the request's Origin.
  HeaderList cors_headers(const HttpRequest& request) const;
  // Sends a complete response with CORS headers and counts it in the metrics.
  void reply(const HttpRequest& request, ResponseWriter& writer, HttpResponse response);
  void reply_error(const HttpRequest& request, ResponseWriter& writer, int status,
                   const std::string& message, const std::string& param = "",
                   const std::string& code = "");

 private:
  bool authorized(const HttpRequest& request) const;
  void route(HttpRequest& request, const std::shared_ptr<ResponseWriter>& writer);
  void start_job(HttpRequest request, std::shared_ptr<ResponseWriter> writer);
  void run_job(const std::shared_ptr<HttpRequest>& request, const std::shared_ptr<ResponseWriter>& writer,
               const std::shared_ptr<void>& slot);

  OpenAiOptions options_;
  mutable std::mutex ctx_mutex_;
  std::shared_ptr<ServingContext> ctx_;
  Metrics metrics_;
  RequestSlots slots_;
  // Last: joined first, while everything their tasks touch still exists. Two pools, so that
  // requests with long prompts to tokenize do not hold up the streams already running.
  WorkerPool workers_;
  WorkerPool stream_workers_;
};

// The routes served on worker tasks (generation.cpp, token_routes.cpp). They throw ApiError
// (before any response byte is sent). start_generation returns once the request is submitted;
// the response follows from tasks posted as the engine produces output, and slot is held
// until it ends.
void start_generation(OpenAiServer& server, std::shared_ptr<ServingContext> ctx, std::shared_ptr<HttpRequest> request,
                      std::shared_ptr<ResponseWriter> writer, std::shared_ptr<void> slot);
void serve_tokenize(OpenAiServer& server, const ServingContext& ctx, const HttpRequest& request,
                    ResponseWriter& writer);
void serve_detokenize(OpenAiServer& server, const ServingContext& ctx, const HttpRequest& request,
                      ResponseWriter& writer);

}  // namespace ferrum::server
