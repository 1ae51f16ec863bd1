// The limits that bound one request's work (docs/serving.md, "Limits"), and the access checks
// (API key comparison, loopback detection).
#include <gtest/gtest.h>

#include <string>

#include "server/access.h"
#include "server/api_error.h"
#include "server/openai_request.h"

using namespace ferrum;
using namespace ferrum::server;

namespace {

// The parameter named by the 400 a parse throws, or "" when it parses.
std::string refused_param(const json& body, bool chat) {
  try {
    if (chat) parse_chat_request(body, 1000);
    else parse_completion_request(body, 1000);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400) << e.what();
    return e.param();
  }
  return "";
}

json chat(json extra) {
  json b = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  b.update(extra);
  return b;
}

}  // namespace

TEST(RequestLimits, StopStringLength) {
  EXPECT_EQ(refused_param(chat({{"stop", std::string(1024, 'x')}}), true), "");
  EXPECT_EQ(refused_param(chat({{"stop", std::string(1025, 'x')}}), true), "stop");
  EXPECT_EQ(refused_param(chat({{"stop", {"a", std::string(5000, 'y')}}}), true), "stop");
  EXPECT_EQ(refused_param(chat({{"stop", json::array({"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l",
                                                       "m", "n", "o", "p", "q"})}}), true), "stop");
}

TEST(RequestLimits, MessageCount) {
  json many = json::array();
  for (int i = 0; i < 4096; ++i) many.push_back({{"role", "user"}, {"content", "x"}});
  EXPECT_EQ(refused_param(json{{"messages", many}}, true), "");
  many.push_back({{"role", "user"}, {"content", "x"}});
  EXPECT_EQ(refused_param(json{{"messages", many}}, true), "messages");
}

TEST(RequestLimits, PromptCount) {
  json prompts = json::array();
  for (int i = 0; i < 1024; ++i) prompts.push_back("p");
  EXPECT_EQ(refused_param(json{{"prompt", prompts}}, false), "");
  prompts.push_back("p");
  EXPECT_EQ(refused_param(json{{"prompt", prompts}}, false), "prompt");
}

TEST(RequestLimits, CountsOfSamplesAndLogprobs) {
  EXPECT_EQ(refused_param(chat({{"n", 128}}), true), "");
  EXPECT_EQ(refused_param(chat({{"n", 129}}), true), "n");
  EXPECT_EQ(refused_param(chat({{"logprobs", true}, {"top_logprobs", 21}}), true), "top_logprobs");
  EXPECT_EQ(refused_param(json{{"prompt", "p"}, {"logprobs", 21}}, false), "logprobs");
}

// fuzz_openai_request: a tool whose "type" was not a string made nlohmann throw a type_error,
// which the server answered with 500; the same held for a content part's "type".
TEST(RequestLimits, NonStringTypesAre400s) {
  EXPECT_EQ(refused_param(chat({{"tools", json::parse(R"([{"type": {"name": "w"}, "function": {"name": "w"}}])")}}), true),
            "tools");
  EXPECT_EQ(refused_param(json{{"messages", json::parse(R"([{"role": "user", "content": [{"type": 7, "text": "x"}]}])")}}, true),
            "messages");
}

TEST(Access, SameSecret) {
  EXPECT_TRUE(same_secret("sk-abc", "sk-abc"));
  EXPECT_FALSE(same_secret("sk-abd", "sk-abc"));
  EXPECT_FALSE(same_secret("sk-ab", "sk-abc"));
  EXPECT_FALSE(same_secret("sk-abcd", "sk-abc"));
  EXPECT_FALSE(same_secret("", "sk-abc"));
  EXPECT_FALSE(same_secret(std::string("sk-abc\0", 7), "sk-abc"));
}

TEST(Access, LoopbackHosts) {
  for (const char* h : {"127.0.0.1", "127.8.9.10", "::1", "localhost"}) EXPECT_TRUE(is_loopback_host(h)) << h;
  for (const char* h : {"0.0.0.0", "::", "192.168.1.2", "10.0.0.1", "example.com", ""}) EXPECT_FALSE(is_loopback_host(h)) << h;
}
