// The OpenAI server over real sockets, against a fake engine: routes, status codes, streaming,
// keep-alive, disconnects and many concurrent streams.
#include <gtest/gtest.h>

#include <thread>

#include "server_fixture.h"
#include "server/openai_response.h"
#include "server/openai_server.h"

using namespace ferrum;
using namespace ferrum::server;
using namespace ferrum::testing;


TEST_F(ServerFixture, HealthIs503WhileLoadingThen200) {
  start({}, {}, /*ready=*/false);
  auto r = http_call(port(), "GET", "/health");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers["retry-after"], "1");
  EXPECT_EQ(post("/v1/chat/completions", chat()).status, 503);
  make_ready();
  EXPECT_EQ(http_call(port(), "GET", "/health").status, 200);
}

TEST_F(ServerFixture, RoutesAndMethods) {
  start();
  auto r = http_call(port(), "GET", "/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(body_json(r)["error"]["type"], "invalid_request_error");
  r = http_call(port(), "GET", "/v1/chat/completions");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "POST");
  r = http_call(port(), "GET", "/v1/models");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body_json(r)["data"][0]["id"], "tiny");
  EXPECT_EQ(body_json(r)["data"].size(), 2u);
  EXPECT_EQ(http_call(port(), "GET", "/v1/models/tiny-alias").status, 200);
  EXPECT_EQ(http_call(port(), "GET", "/v1/models/other").status, 404);
  r = post("/v1/chat/completions", chat({{"model", "gpt-4"}}));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(body_json(r)["error"]["code"], "model_not_found");
}

TEST_F(ServerFixture, ApiKeyAndCorsPreflight) {
  start({.api_key = "sekret", .cors_origin = "https://app.example"});
  EXPECT_EQ(http_call(port(), "GET", "/v1/models").status, 401);
  auto r = http_call(port(), "GET", "/v1/models", "", {"Authorization: Bearer wrong"});
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(body_json(r)["error"]["type"], "authentication_error");
  EXPECT_EQ(http_call(port(), "GET", "/v1/models", "", {"Authorization: Bearer sekretX"}).status, 401);
  EXPECT_EQ(http_call(port(), "GET", "/metrics").status, 401);
  EXPECT_EQ(http_call(port(), "GET", "/v1/models", "", {"Authorization: Bearer sekret"}).status, 200);
  EXPECT_EQ(http_call(port(), "GET", "/health").status, 200);
  // Preflight carries no key and must pass; the allowed origin is echoed.
  r = http_call(port(), "OPTIONS", "/v1/chat/completions", "",
                {"Origin: https://app.example", "Access-Control-Request-Method: POST",
                 "Access-Control-Request-Headers: authorization, content-type"});
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.headers["access-control-allow-origin"], "https://app.example");
  EXPECT_EQ(r.headers["access-control-allow-headers"], "authorization, content-type");
  EXPECT_NE(r.headers["access-control-allow-methods"].find("POST"), std::string::npos);
  // Real requests carry the CORS header too, errors included; other origins get none.
  r = http_call(port(), "GET", "/v1/models", "", {"Origin: https://app.example"});
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.headers["access-control-allow-origin"], "https://app.example");
  r = http_call(port(), "GET", "/health", "", {"Origin: https://evil.example"});
  EXPECT_EQ(r.headers.count("access-control-allow-origin"), 0u);
}

TEST_F(ServerFixture, BodyLimitAndMalformedInput) {
  start({}, {.max_body_bytes = 4096});
  auto r = post("/v1/chat/completions", chat({{"pad", std::string(10000, 'x')}}));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(body_json(r)["error"]["type"], "invalid_request_error");
  r = http_call(port(), "POST", "/v1/chat/completions", "{not json");
  EXPECT_EQ(r.status, 400);
  r = http_call(port(), "POST", "/v1/chat/completions", "{\"messages\": \"\xff\xfe\"}");
  EXPECT_EQ(r.status, 400);
  TestConnection c(port());
  c.send_raw("GARBAGE\r\n\r\n");
  EXPECT_EQ(c.read_response().status, 400);
  r = post("/v1/chat/completions", chat({{"messages", {{{"role", "assistant"}, {"content", "x"}}}}}));
  EXPECT_EQ(r.status, 400);  // the chat template refused it
  EXPECT_NE(body_json(r)["error"]["message"].get<std::string>().find("template"), std::string::npos);
  EXPECT_EQ(http_call(port(), "GET", "/health").status, 200);
}

TEST_F(ServerFixture, ChatCompletionNonStreaming) {
  start();
  auto r = post("/v1/chat/completions", chat({{"logprobs", true}, {"top_logprobs", 2}, {"seed", 3}, {"temperature", 0}}));
  ASSERT_EQ(r.status, 200) << r.body;
  json j = body_json(r);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "abcde");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["choices"][0]["logprobs"]["content"].size(), 5u);
  EXPECT_EQ(j["choices"][0]["logprobs"]["content"][0]["top_logprobs"][1]["token"], "z");
  std::string prompt = "<user>hi\n<assistant>";  // FakeChat's rendering, no BOS added
  EXPECT_EQ(j["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["usage"]["total_tokens"], prompt.size() + 5);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  auto p = engine_->last_params();
  EXPECT_EQ(p.seed, 3u);
  EXPECT_EQ(p.logprobs, 2);
  EXPECT_EQ(p.temperature, 0.f);
  // The same prompt again is served from the (fake) prefix cache.
  j = body_json(post("/v1/chat/completions", chat()));
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], prompt.size());
}

TEST_F(ServerFixture, ChatStreamingEventsInOrder) {
  start();
  auto r = post("/v1/chat/completions", chat({{"stream", true}, {"n", 2}, {"stream_options", {{"include_usage", true}}}}));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/event-stream");
  auto events = sse_payloads(r.body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::map<int, std::string> text;
  std::map<int, std::string> finish;
  std::set<int> role_seen;
  json usage;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    json e = json::parse(events[i]);
    EXPECT_EQ(e["object"], "chat.completion.chunk");
    if (e["choices"].empty()) {
      usage = e["usage"];
      EXPECT_EQ(i, events.size() - 2) << "usage must be the last chunk";
      continue;
    }
    EXPECT_TRUE(e.contains("usage") && e["usage"].is_null());
    int idx = e["choices"][0]["index"];
    auto& delta = e["choices"][0]["delta"];
    if (delta.contains("role")) {
      EXPECT_FALSE(role_seen.count(idx));
      EXPECT_TRUE(text[idx].empty()) << "role must come first";
      role_seen.insert(idx);
    }
    if (delta.contains("content")) text[idx] += delta["content"].get<std::string>();
    if (!e["choices"][0]["finish_reason"].is_null()) finish[idx] = e["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(role_seen.size(), 2u);
  EXPECT_EQ(text[0], "abcde");
  EXPECT_EQ(text[1], "bcdef");
  EXPECT_EQ(finish[0], "length");
  EXPECT_EQ(finish[1], "length");
  EXPECT_EQ(usage["completion_tokens"], 10);
}

TEST_F(ServerFixture, CompletionsPromptsAndChoices) {
  start();
  auto r = post("/v1/completions", {{"prompt", {"ab", "cd"}}, {"n", 2}, {"max_tokens", 3}, {"logprobs", 1}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = body_json(r);
  EXPECT_EQ(j["object"], "text_completion");
  ASSERT_EQ(j["choices"].size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(j["choices"][i]["index"], i);
  EXPECT_EQ(j["choices"][0]["text"], "abc");
  EXPECT_EQ(j["choices"][1]["text"], "bcd");
  EXPECT_EQ(j["choices"][0]["logprobs"]["text_offset"], json({0, 1, 2}));
  EXPECT_EQ(j["usage"]["prompt_tokens"], 6);  // two prompts of BOS + 2 bytes
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);

  r = post("/v1/completions", {{"prompt", {10, 11, 12}}, {"max_tokens", 2}, {"stream", true}});
  auto events = sse_payloads(r.body);
  ASSERT_GE(events.size(), 2u);
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) text += json::parse(events[i])["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, "ab");
  EXPECT_EQ(json::parse(events[events.size() - 2])["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(post("/v1/completions", {{"prompt", "x"}, {"echo", true}, {"max_tokens", 2}}).status, 200);
}

TEST_F(ServerFixture, StreamedPromptListInterleavesItsChoices) {
  // Each prompt is its own engine request; their outputs stream as they come, not one prompt
  // after the other.
  start();
  auto r = post("/v1/completions", {{"prompt", {"ab", "cd"}}, {"max_tokens", 30}, {"stream", true}});
  ASSERT_EQ(r.status, 200);
  auto events = sse_payloads(r.body);
  ASSERT_EQ(events.back(), "[DONE]");
  int first_of_1 = -1, finish_of_0 = -1;
  std::string text[2];
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    json c = json::parse(events[i])["choices"][0];
    int index = c["index"];
    ASSERT_TRUE(index == 0 || index == 1);
    text[index] += c["text"].get<std::string>();
    if (index == 1 && first_of_1 < 0) first_of_1 = static_cast<int>(i);
    if (index == 0 && c["finish_reason"] == "length") finish_of_0 = static_cast<int>(i);
  }
  EXPECT_EQ(text[0].size(), 30u);
  EXPECT_EQ(text[1].size(), 30u);
  ASSERT_GE(first_of_1, 0);
  EXPECT_LT(first_of_1, finish_of_0);
}

TEST_F(ServerFixture, ContextLimitNamesBothNumbers) {
  start();
  auto r = post("/v1/completions", {{"prompt", std::string(200, 'x')}, {"max_tokens", 100}});
  EXPECT_EQ(r.status, 400);
  std::string msg = body_json(r)["error"]["message"];
  EXPECT_NE(msg.find("256"), std::string::npos) << msg;
  EXPECT_NE(msg.find("301"), std::string::npos) << msg;  // 201 prompt tokens + 100
}

TEST_F(ServerFixture, QueueFullIs503WithRetryAfter) {
  start({}, {}, true, /*max_waiting=*/0);
  auto r = post("/v1/chat/completions", chat());
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers["retry-after"], "1");
}

TEST_F(ServerFixture, KeepAliveServesSeveralRequestsOnOneConnection) {
  start();
  TestConnection c(port());
  for (int i = 0; i < 3; ++i) {
    c.send_raw(make_request("POST", "/v1/chat/completions", chat().dump()));
    auto r = c.read_response();
    ASSERT_TRUE(r.complete);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.headers["connection"], "keep-alive");
  }
  c.send_raw(make_request("GET", "/health") + make_request("GET", "/v1/models"));  // pipelined
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_EQ(c.read_response().status, 200);
}

TEST_F(ServerFixture, ExpectContinueGetsAGoAhead) {
  start({}, {.max_body_bytes = 4096});
  std::string body = chat().dump();
  TestConnection c(port());
  c.send_raw("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n");
  auto interim = c.read_response(2000);
  EXPECT_EQ(interim.status, 100);
  c.send_raw(body);
  EXPECT_EQ(c.read_response().status, 200);
  // Over the limit: refused before the body is sent.
  TestConnection big(port());
  big.send_raw("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n\r\n");
  EXPECT_EQ(big.read_response(2000).status, 413);
}

TEST_F(ServerFixture, DisconnectAbortsTheRequest) {
  start();
  {
    TestConnection c(port());
    c.send_raw(make_request("POST", "/v1/chat/completions", chat({{"stream", true}, {"max_tokens", 200}}).dump()));
    while (c.buffer().find("content") == std::string::npos) ASSERT_TRUE(c.fill());
    EXPECT_EQ(engine_->stats().running, 1);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (engine_->stats().running > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(engine_->stats().running, 0);
  EXPECT_EQ(engine_->stats().kv_blocks_used, 0);
  EXPECT_TRUE(api_->wait_idle(2000));
  auto m = http_call(port(), "GET", "/metrics");
  EXPECT_NE(m.body.find("ferrum_kv_cache_blocks_used 0"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("finished_reason=\"abort\"} 1"), std::string::npos) << m.body;
}

TEST_F(ServerFixture, SlowClientIsDroppedAndServerStillServes) {
  start({}, {.request_timeout = std::chrono::milliseconds(300)});
  TestConnection slow(port());
  slow.send_raw("POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"mess");
  auto t0 = std::chrono::steady_clock::now();
  while (slow.fill(3000)) {
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(post("/v1/chat/completions", chat()).status, 200);
}

TEST_F(ServerFixture, ManyConcurrentStreams) {
  start({}, {.io_threads = 2});
  constexpr int kClients = 300;
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      auto r = post("/v1/chat/completions", chat({{"stream", true}, {"max_tokens", 20 + i % 5}}));
      auto events = sse_payloads(r.body);
      std::string text;
      for (size_t k = 0; k + 1 < events.size(); ++k) {
        json e = json::parse(events[k]);
        if (e["choices"][0]["delta"].contains("content")) text += e["choices"][0]["delta"]["content"].get<std::string>();
      }
      if (r.status == 200 && !events.empty() && events.back() == "[DONE]" && text.size() == size_t(20 + i % 5)) ++ok;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok, kClients);
}

TEST_F(ServerFixture, TokenizeAndDetokenize) {
  start();
  auto r = post("/tokenize", {{"prompt", "hi"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(body_json(r)["tokens"], json({256, 'h', 'i'}));
  EXPECT_EQ(body_json(r)["max_model_len"], 256);
  r = post("/tokenize", {{"messages", {{{"role", "user"}, {"content", "x"}}}}});
  EXPECT_EQ(body_json(r)["count"], std::string("<user>x\n<assistant>").size());
  r = post("/detokenize", {{"tokens", {'o', 'k'}}});
  EXPECT_EQ(body_json(r)["prompt"], "ok");
  EXPECT_EQ(post("/detokenize", {{"tokens", {999}}}).status, 400);
  EXPECT_EQ(post("/detokenize", {{"tokens", "x"}}).status, 400);
}

TEST_F(ServerFixture, TooManyJobsIs503) {
  start({.max_jobs = 1});
  TestConnection busy(port());
  busy.send_raw(make_request("POST", "/v1/chat/completions", chat({{"stream", true}, {"max_tokens", 200}}).dump()));
  while (busy.buffer().find("content") == std::string::npos) ASSERT_TRUE(busy.fill());
  auto r = post("/v1/chat/completions", chat());
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers["retry-after"], "1");
  EXPECT_EQ(http_call(port(), "GET", "/health").status, 200);  // cheap routes need no job
}

TEST_F(ServerFixture, DrainRefusesNewWorkAndFinishesRunning) {
  start();
  TestConnection streaming(port()), idle(port());
  idle.send_raw(make_request("GET", "/health"));
  ASSERT_EQ(idle.read_response().status, 200);
  streaming.send_raw(make_request("POST", "/v1/chat/completions", chat({{"stream", true}, {"max_tokens", 100}}).dump()));
  while (streaming.buffer().find("content") == std::string::npos) ASSERT_TRUE(streaming.fill());
  http_->begin_drain();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto r = streaming.read_response(5000);  // the running stream completes
  ASSERT_TRUE(r.complete);
  EXPECT_EQ(sse_payloads(r.body).back(), "[DONE]");
  idle.send_raw(make_request("GET", "/health"));  // an open connection: 503, then closed
  auto late = idle.read_response();
  EXPECT_EQ(late.status, 503);
  EXPECT_EQ(late.headers["connection"], "close");
  EXPECT_THROW(TestConnection{port()}, std::runtime_error);  // no longer accepting
}
