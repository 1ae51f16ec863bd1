// A running OpenAiServer + HttpServer on a free port over FakeEngine, for the HTTP tests.
#pragma once
#include <gtest/gtest.h>

#include "fakes.h"
#include "http_client.h"
#include "server/openai_server.h"

namespace ferrum::testing {

using server::HttpRequest;
using server::HttpServer;
using server::HttpServerOptions;
using server::OpenAiOptions;
using server::OpenAiServer;
using server::ResponseWriter;
using server::ServingContext;

class ServerFixture : public ::testing::Test {
 protected:
  void start(OpenAiOptions api = {}, HttpServerOptions http = {}, bool ready = true, int32_t max_waiting = 100000) {
    api_ = std::make_unique<OpenAiServer>(api);
    http.port = 0;
    http.io_threads = 2;
    http_ = std::make_unique<HttpServer>(http, [this](HttpRequest r, std::shared_ptr<ResponseWriter> w) {
      api_->handle(std::move(r), std::move(w));
    });
    http_->start();
    engine_ = std::make_shared<FakeEngine>(std::chrono::microseconds(2000), max_waiting);
    if (ready) make_ready();
  }
  void make_ready() {
    auto ctx = std::make_shared<ServingContext>();
    ctx->engine = engine_;
    ctx->tokenizer = std::make_shared<FakeTokenizer>();
    ctx->chat = chat_;
    if (!ctx->chat) ctx->chat = std::make_shared<FakeChat>();
    ctx->model_names = {"tiny", "tiny-alias"};
    ctx->max_model_len = 256;
    ctx->created = 1700000000;
    api_->set_context(ctx);
  }
  void TearDown() override {
    if (engine_) engine_->shutdown();
    if (api_) api_->wait_idle(5000);
    http_.reset();
    api_.reset();
  }
  int port() const { return http_->port(); }
  ParsedResponse post(const std::string& path, const json& body, std::vector<std::string> headers = {}) {
    return http_call(port(), "POST", path, body.dump(), headers);
  }
  static json chat(json extra = json::object()) {
    json b = {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 5}};
    b.update(extra);
    return b;
  }

  std::unique_ptr<OpenAiServer> api_;
  std::unique_ptr<HttpServer> http_;
  std::shared_ptr<FakeEngine> engine_;
  std::shared_ptr<const server::ChatFormatter> chat_;  // null: FakeChat
};

inline json body_json(const ParsedResponse& r) { return json::parse(r.body); }

}  // namespace ferrum::testing
