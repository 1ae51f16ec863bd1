// The OpenAI-compatible API over HttpServer: routing, API key, CORS, health and metrics, and
// the generation routes, which run on JobRunner threads against the engine's API only.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/chat_formatter.h"
#include "server/http_server.h"
#include "server/job_runner.h"
#include "server/metrics.h"

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
  size_t max_jobs = 4096;   // concurrent generation requests before 503
  int retry_after_s = 1;
};

class OpenAiServer {
 public:
  explicit OpenAiServer(OpenAiOptions options);
  ~OpenAiServer();  // waits for running jobs

  void set_context(std::shared_ptr<ServingContext> ctx);  // the model is ready
  std::shared_ptr<ServingContext> context() const;

  // The HttpServer handler.
  void handle(HttpRequest request, std::shared_ptr<ResponseWriter> writer);

  JobRunner& jobs() { return jobs_; }
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
  void run_job(const HttpRequest& request, const std::shared_ptr<ResponseWriter>& writer);

  OpenAiOptions options_;
  mutable std::mutex ctx_mutex_;
  std::shared_ptr<ServingContext> ctx_;
  Metrics metrics_;
  JobRunner jobs_;
};

// The routes served on job threads (generation.cpp, token_routes.cpp). They throw ApiError.
void serve_generation(OpenAiServer& server, const ServingContext& ctx, const HttpRequest& request,
                      const std::shared_ptr<ResponseWriter>& writer);
void serve_tokenize(OpenAiServer& server, const ServingContext& ctx, const HttpRequest& request,
                    ResponseWriter& writer);
void serve_detokenize(OpenAiServer& server, const ServingContext& ctx, const HttpRequest& request,
                      ResponseWriter& writer);

}  // namespace ferrum::server
