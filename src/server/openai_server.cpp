#include "server/openai_server.h"

#include <chrono>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "server/access.h"
#include "server/api_error.h"
#include "server/openai_response.h"

namespace ferrum::server {

namespace {

struct Route {
  const char* path;
  const char* methods;  // the Allow header
};
constexpr Route kRoutes[] = {
    {"/v1/chat/completions", "POST"}, {"/v1/completions", "POST"}, {"/v1/models", "GET"},
    {"/health", "GET"}, {"/metrics", "GET"}, {"/tokenize", "POST"}, {"/detokenize", "POST"},
    {"/version", "GET"},
};

const Route* find_route(const std::string& path) {
  for (auto& r : kRoutes)
    if (path == r.path) return &r;
  return nullptr;
}

HttpResponse json_response(int status, const json& body) { return {status, "application/json", dump_json(body), {}}; }

json model_card(const std::string& name, const ServingContext& ctx) {
  return json{{"id", name}, {"object", "model"}, {"created", ctx.created}, {"owned_by", "ferrum"},
              {"max_model_len", ctx.max_model_len}};
}

}  // namespace

OpenAiServer::OpenAiServer(OpenAiOptions options)
    : options_(std::move(options)), slots_(options_.max_jobs), workers_(options_.worker_threads),
      stream_workers_(options_.stream_threads) {}

OpenAiServer::~OpenAiServer() { slots_.wait_idle(); }

void OpenAiServer::set_context(std::shared_ptr<ServingContext> ctx) {
  std::lock_guard lock(ctx_mutex_);
  ctx_ = std::move(ctx);
}

std::shared_ptr<ServingContext> OpenAiServer::context() const {
  std::lock_guard lock(ctx_mutex_);
  return ctx_;
}

HeaderList OpenAiServer::cors_headers(const HttpRequest& request) const {
  HeaderList h;
  if (options_.cors_origin.empty()) return h;
  std::string origin = request.header("origin");
  if (options_.cors_origin == "*") {
    h.emplace_back("Access-Control-Allow-Origin", "*");
  } else {
    // A list: echo the caller's origin when it is allowed.
    std::string list = options_.cors_origin;
    size_t start = 0;
    bool allowed = false;
    while (start <= list.size()) {
      size_t end = list.find(',', start);
      if (end == std::string::npos) end = list.size();
      std::string item = list.substr(start, end - start);
      item.erase(0, item.find_first_not_of(' '));
      item.erase(item.find_last_not_of(' ') + 1);
      if (!origin.empty() && item == origin) allowed = true;
      start = end + 1;
    }
    if (!allowed) return h;
    h.emplace_back("Access-Control-Allow-Origin", origin);
    h.emplace_back("Vary", "Origin");
  }
  h.emplace_back("Access-Control-Expose-Headers", "Retry-After");
  return h;
}

void OpenAiServer::reply(const HttpRequest& request, ResponseWriter& writer, HttpResponse response) {
  for (auto& h : cors_headers(request)) response.headers.push_back(h);
  metrics_.http_response(response.status);
  log::debug("{} {} -> {}", request.method, request.path, response.status);
  writer.send(std::move(response));
}

void OpenAiServer::reply_error(const HttpRequest& request, ResponseWriter& writer, int status,
                               const std::string& message, const std::string& param, const std::string& code) {
  HttpResponse r = json_response(status, error_body(status, message, param, code));
  if (status == 503) r.headers.emplace_back("Retry-After", std::to_string(options_.retry_after_s));
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  reply(request, writer, std::move(r));
}

bool OpenAiServer::authorized(const HttpRequest& request) const {
  if (options_.api_key.empty()) return true;
  std::string auth = request.header("authorization");
  const std::string prefix = "Bearer ";
  if (auth.size() < prefix.size() || auth.compare(0, prefix.size(), prefix) != 0) return false;
  return same_secret(auth.substr(prefix.size()), options_.api_key);
}

void OpenAiServer::handle(HttpRequest request, std::shared_ptr<ResponseWriter> writer) {
  try {
    route(request, writer);
  } catch (const ApiError& e) {
    reply_error(request, *writer, e.status(), e.what(), e.param(), e.code());
  } catch (const std::exception& e) {
    log::error("{} {}: {}", request.method, request.path, e.what());
    reply_error(request, *writer, 500, "Internal server error");
  }
}

void OpenAiServer::route(HttpRequest& request, const std::shared_ptr<ResponseWriter>& writer) {
  const Route* r = find_route(request.path);
  if (request.method == "OPTIONS") {
    // CORS preflight: answered without the key (browsers never send it on preflight).
    HttpResponse resp{204, "", "", {}};
    if (!options_.cors_origin.empty()) {
      resp.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      std::string asked = request.header("access-control-request-headers");
      resp.headers.emplace_back("Access-Control-Allow-Headers", asked.empty() ? "Authorization, Content-Type" : asked);
      resp.headers.emplace_back("Access-Control-Max-Age", "86400");
    }
    if (r) resp.headers.emplace_back("Allow", std::string(r->methods) + ", OPTIONS");
    return reply(request, *writer, std::move(resp));
  }
  if (request.path != "/health" && !authorized(request)) {
    return reply_error(request, *writer, 401,
                       request.header("authorization").empty() ? "Missing API key: send 'Authorization: Bearer <key>'"
                                                               : "Invalid API key",
                       "", "invalid_api_key");
  }
  if (!r && request.path.rfind("/v1/models/", 0) == 0) {
    if (request.method != "GET") throw ApiError(405, fmt::format("Method {} not allowed on {}", request.method, request.path));
    auto ctx = context();
    if (!ctx) throw ApiError(503, "The model is still loading");
    std::string id = request.path.substr(11);
    for (auto& name : ctx->model_names)
      if (name == id) return reply(request, *writer, json_response(200, model_card(name, *ctx)));
    throw ApiError(404, fmt::format("The model '{}' does not exist", id), "model", "model_not_found");
  }
  if (!r) throw ApiError(404, fmt::format("Not found: {} {}", request.method, request.path));
  if (request.method != r->methods) {
    HttpResponse resp = json_response(405, error_body(405, fmt::format("Method {} not allowed on {}; use {}", request.method, request.path, r->methods)));
    resp.headers.emplace_back("Allow", r->methods);
    return reply(request, *writer, std::move(resp));
  }

  auto ctx = context();
  if (request.path == "/health") {
    if (!ctx) return reply_error(request, *writer, 503, "The model is still loading");
    const std::string failure = ctx->engine->stats().device_failure;
    if (!failure.empty()) return reply_error(request, *writer, 503, failure);
    return reply(request, *writer, json_response(200, json{{"status", "ok"}}));
  }
  if (request.path == "/version") return reply(request, *writer, json_response(200, json{{"version", "0.1.0"}}));
  if (request.path == "/metrics") {
    EngineStats stats;
    if (ctx) stats = ctx->engine->stats();
    return reply(request, *writer, {200, "text/plain; version=0.0.4; charset=utf-8", metrics_.render(ctx ? &stats : nullptr), {}});
  }
  if (!ctx) throw ApiError(503, "The model is still loading");
  if (request.path == "/v1/models") {
    json data = json::array();
    for (auto& name : ctx->model_names) data.push_back(model_card(name, *ctx));
    return reply(request, *writer, json_response(200, json{{"object", "list"}, {"data", std::move(data)}}));
  }
  start_job(std::move(request), writer);
}

void OpenAiServer::start_job(HttpRequest request, std::shared_ptr<ResponseWriter> writer) {
  auto slot = slots_.try_acquire();
  if (!slot) return reply_error(request, *writer, 503, "Too many concurrent requests; retry later");
  auto shared_request = std::make_shared<HttpRequest>(std::move(request));
  workers_.post([this, shared_request, writer, slot = std::move(slot)]() mutable {
    run_job(shared_request, writer, slot);
    writer.reset();  // the connection before the slot: idle means nothing holds one
    shared_request.reset();
    slot.reset();
  });
}

void OpenAiServer::run_job(const std::shared_ptr<HttpRequest>& request, const std::shared_ptr<ResponseWriter>& writer,
                           const std::shared_ptr<void>& slot) {
  try {
    auto ctx = context();
    if (!ctx) throw ApiError(503, "The model is still loading");
    if (request->path == "/tokenize") return serve_tokenize(*this, *ctx, *request, *writer);
    if (request->path == "/detokenize") return serve_detokenize(*this, *ctx, *request, *writer);
    start_generation(*this, std::move(ctx), request, writer, slot);  // a copy: ours lasts until any error is sent
  } catch (const ApiError& e) {
    reply_error(*request, *writer, e.status(), e.what(), e.param(), e.code());
  } catch (const QueueFull& e) {
    reply_error(*request, *writer, 503, fmt::format("The server is overloaded: {}", e.what()));
  } catch (const DeviceFailed& e) {
    reply_error(*request, *writer, 503, fmt::format("The server cannot generate: {}", e.what()));
  } catch (const InvalidRequest& e) {
    reply_error(*request, *writer, 400, e.what());
  } catch (const std::exception& e) {
    log::error("{} {}: {}", request->method, request->path, e.what());
    reply_error(*request, *writer, 500, fmt::format("Internal server error: {}", e.what()));
  }
}

}  // namespace ferrum::server
