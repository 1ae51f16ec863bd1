// Response and chunk shapes, compared field by field with OpenAI's API reference.
#include <gtest/gtest.h>

#include "server/api_error.h"
#include "server/openai_response.h"

using namespace ferrum;
using namespace ferrum::server;

namespace {
std::string text_of(int32_t id) { return id == 1 ? "he" : id == 2 ? "llo" : "\xe2\x82"; }  // 3: half of "€"
ResponseIdentity rid() { return {"chatcmpl-1", 1700000000, "tiny"}; }
}  // namespace

TEST(OpenAiResponse, ErrorShape) {
  json e = error_body(400, "bad", "temperature");
  EXPECT_EQ(e["error"]["message"], "bad");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "temperature");
  EXPECT_TRUE(e["error"]["code"].is_null());
  EXPECT_EQ(error_body(401, "x")["error"]["type"], "authentication_error");
}

TEST(OpenAiResponse, Usage) {
  json u = usage_json(10, 5, 4);
  EXPECT_EQ(u["total_tokens"], 15);
  EXPECT_EQ(u["prompt_tokens_details"]["cached_tokens"], 4);
}

TEST(OpenAiResponse, ChatCompletion) {
  ChoiceResult c;
  c.text = "hello";
  c.finish_reason = FinishReason::Length;
  c.logprobs = {{1, -0.5f, {{1, -0.5f}, {2, -1.5f}}}, {2, -0.25f, {}}};
  json r = chat_completion_json(rid(), {c}, usage_json(3, 2, 0), true, text_of);
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["model"], "tiny");
  auto& ch = r["choices"][0];
  EXPECT_EQ(ch["message"]["role"], "assistant");
  EXPECT_EQ(ch["message"]["content"], "hello");
  EXPECT_EQ(ch["finish_reason"], "length");
  auto& lp = ch["logprobs"]["content"];
  ASSERT_EQ(lp.size(), 2u);
  EXPECT_EQ(lp[0]["token"], "he");
  EXPECT_FLOAT_EQ(lp[0]["logprob"].get<float>(), -0.5f);
  EXPECT_EQ(lp[0]["bytes"], json({104, 101}));
  EXPECT_EQ(lp[0]["top_logprobs"][1]["token"], "llo");
  EXPECT_EQ(lp[1]["top_logprobs"].size(), 0u);
  EXPECT_FALSE(ch["message"].contains("tool_calls"));
}

TEST(OpenAiResponse, ChatToolCallsAndReasoning) {
  ChoiceResult c;
  c.reasoning = "thinking";
  c.tool_calls = json::array({{{"id", "call_1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{}"}}}}});
  c.finish_reason = FinishReason::Stop;
  json r = chat_completion_json(rid(), {c}, usage_json(1, 1, 0), false, text_of);
  auto& ch = r["choices"][0];
  EXPECT_EQ(ch["finish_reason"], "tool_calls");
  EXPECT_TRUE(ch["message"]["content"].is_null());
  EXPECT_EQ(ch["message"]["reasoning_content"], "thinking");
  EXPECT_EQ(ch["message"]["tool_calls"][0]["function"]["name"], "f");
  EXPECT_TRUE(ch["logprobs"].is_null());
}

TEST(OpenAiResponse, CompletionLogprobsShape) {
  json lp = completion_logprobs_json({{1, -0.5f, {{1, -0.5f}, {2, -1.5f}}}, {2, -0.25f, {{2, -0.25f}}}}, text_of, 4, true);
  EXPECT_EQ(lp["tokens"], json({"he", "llo"}));
  EXPECT_EQ(lp["text_offset"], json({4, 6}));
  EXPECT_FLOAT_EQ(lp["token_logprobs"][1].get<float>(), -0.25f);
  EXPECT_FLOAT_EQ(lp["top_logprobs"][0]["llo"].get<float>(), -1.5f);
  json no_top = completion_logprobs_json({{1, -0.5f, {}}}, text_of, 0, false);
  EXPECT_TRUE(no_top["top_logprobs"][0].is_null());
}

TEST(OpenAiResponse, ChunksAndSse) {
  json role = chat_chunk_json(rid(), 0, {{"role", "assistant"}, {"content", ""}}, nullptr, "", true);
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_TRUE(role["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(role.contains("usage") && role["usage"].is_null());
  json fin = chat_chunk_json(rid(), 1, json::object(), nullptr, "stop", false);
  EXPECT_EQ(fin["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(fin["choices"][0]["index"], 1);
  EXPECT_FALSE(fin.contains("usage"));
  json u = usage_chunk_json(rid(), "chat.completion.chunk", usage_json(1, 2, 0));
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["completion_tokens"], 2);
  std::string ev = sse_event(json{{"a", 1}});
  EXPECT_EQ(ev, "data: {\"a\":1}\n\n");
  EXPECT_STREQ(sse_done(), "data: [DONE]\n\n");
}

TEST(OpenAiResponse, InvalidUtf8IsReplacedNotThrown) {
  json lp = chat_logprobs_json({{3, -1.f, {}}}, text_of);
  std::string s;
  EXPECT_NO_THROW(s = dump_json(lp));
  EXPECT_NE(s.find("\xef\xbf\xbd"), std::string::npos) << s;  // U+FFFD
  EXPECT_EQ(lp["content"][0]["bytes"], json({0xe2, 0x82}));  // the raw bytes survive
}

TEST(OpenAiResponse, IdsAreUnique) {
  auto a = ResponseIdentity::make("cmpl-", "m"), b = ResponseIdentity::make("cmpl-", "m");
  EXPECT_NE(a.id, b.id);
  EXPECT_EQ(a.id.rfind("cmpl-", 0), 0u);
  EXPECT_GT(a.created, 1600000000);
}
