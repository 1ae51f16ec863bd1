// Request parsing and validation: what OpenAI's API accepts is accepted, everything else is a
// 400 that names the parameter.
#include <gtest/gtest.h>

#include "server/api_error.h"
#include "core/error.h"
#include "server/model_loader.h"
#include "server/openai_request.h"
#include "structured/grammar.h"

using namespace ferrum;
using namespace ferrum::server;

namespace {
json chat_body(json extra = json::object()) {
  json b = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  b.update(extra);
  return b;
}

// The status and named parameter of the ApiError a parse throws.
std::pair<int, std::string> chat_error(const json& body) {
  try {
    parse_chat_request(body, 1000);
  } catch (const ApiError& e) {
    return {e.status(), e.param()};
  }
  return {0, ""};
}
std::pair<int, std::string> completion_error(const json& body) {
  try {
    parse_completion_request(body, 1000);
  } catch (const ApiError& e) {
    return {e.status(), e.param()};
  }
  return {0, ""};
}
}  // namespace

TEST(OpenAiRequest, ChatDefaultsAndSampling) {
  auto r = parse_chat_request(chat_body({{"temperature", 0.5}, {"top_p", 0.9}, {"top_k", 40}, {"min_p", 0.1},
                                         {"seed", 7}, {"n", 3}, {"presence_penalty", 1.5}, {"frequency_penalty", -1},
                                         {"repetition_penalty", 1.1}, {"logit_bias", {{"5", -100}, {"7", 3}}},
                                         {"stop", "END"}, {"max_completion_tokens", 9}, {"min_tokens", 2},
                                         {"ignore_eos", true}}),
                              1000);
  EXPECT_EQ(r.endpoint, Endpoint::Chat);
  EXPECT_EQ(r.model, "m");
  EXPECT_FLOAT_EQ(r.params.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.params.top_p, 0.9f);
  EXPECT_EQ(r.params.top_k, 40);
  EXPECT_FLOAT_EQ(r.params.min_p, 0.1f);
  EXPECT_EQ(r.params.seed, 7u);
  EXPECT_EQ(r.params.n, 3);
  EXPECT_FLOAT_EQ(r.params.presence_penalty, 1.5f);
  EXPECT_FLOAT_EQ(r.params.frequency_penalty, -1.f);
  EXPECT_FLOAT_EQ(r.params.repetition_penalty, 1.1f);
  EXPECT_EQ(r.params.logit_bias.at(5), -100.f);
  EXPECT_EQ(r.params.logit_bias.at(7), 3.f);
  ASSERT_EQ(r.params.stop.size(), 1u);
  EXPECT_EQ(r.params.stop[0], "END");
  EXPECT_EQ(r.params.max_tokens, 9);
  EXPECT_TRUE(r.max_tokens_given);
  EXPECT_EQ(r.params.min_tokens, 2);
  EXPECT_TRUE(r.params.ignore_eos);
  EXPECT_FALSE(r.params.logprobs.has_value());
}

TEST(OpenAiRequest, ChatMessagesNormalized) {
  json body = chat_body();
  body["messages"] = {{{"role", "developer"}, {"content", "be brief"}},
                      {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "a"}}, {{"type", "text"}, {"text", "b"}}}}},
                      {{"role", "assistant"}, {"content", nullptr},
                       {"tool_calls", {{{"id", "c1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{\"x\":1}"}}}}}}},
                      {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "42"}}};
  auto r = parse_chat_request(body, 1000);
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[1]["content"], "a\nb");
  EXPECT_TRUE(r.messages[2]["content"].is_null());
  EXPECT_EQ(r.messages[2]["tool_calls"][0]["function"]["arguments"]["x"], 1);
  EXPECT_EQ(r.messages[3]["content"], "42");
}

TEST(OpenAiRequest, ChatLogprobsAndStreamOptions) {
  auto r = parse_chat_request(chat_body({{"logprobs", true}, {"top_logprobs", 3}, {"stream", true},
                                         {"stream_options", {{"include_usage", true}}}}),
                              1000);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.params.logprobs, 3);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(chat_error(chat_body({{"top_logprobs", 3}})).second, "top_logprobs");
  EXPECT_EQ(chat_error(chat_body({{"stream_options", {{"include_usage", true}}}})).second, "stream_options");
}

TEST(OpenAiRequest, ChatRejectsBadValues) {
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"temperature", 3}}, "temperature"},
      {{{"temperature", "hot"}}, "temperature"},
      {{{"top_p", 0}}, "top_p"},
      {{{"top_p", 1.5}}, "top_p"},
      {{{"n", 0}}, "n"},
      {{{"n", 1.5}}, "n"},
      {{{"n", 100000}}, "n"},
      {{{"max_tokens", -1}}, "max_tokens"},
      {{{"max_tokens", 0}}, "max_tokens"},
      {{{"max_tokens", 1e300}}, "max_tokens"},
      {{{"max_tokens", "10"}}, "max_tokens"},
      {{{"max_completion_tokens", 18446744073709551615ull}}, "max_completion_tokens"},
      {{{"presence_penalty", 2.5}}, "presence_penalty"},
      {{{"frequency_penalty", -3}}, "frequency_penalty"},
      {{{"repetition_penalty", 0}}, "repetition_penalty"},
      {{{"logit_bias", {{"abc", 1}}}}, "logit_bias"},
      {{{"logit_bias", {{"5000", 1}}}}, "logit_bias"},
      {{{"logit_bias", {{"5", 101}}}}, "logit_bias"},
      {{{"logit_bias", json::array()}}, "logit_bias"},
      {{{"stop", 5}}, "stop"},
      {{{"stop", {""}}}, "stop"},
      {{{"stop", {1, 2}}}, "stop"},
      {{{"seed", "x"}}, "seed"},
      {{{"stream", "yes"}}, "stream"},
      {{{"logprobs", 1}}, "logprobs"},
      {{{"top_logprobs", 21}, {"logprobs", true}}, "top_logprobs"},
      {{{"min_tokens", 5}, {"max_tokens", 2}}, "min_tokens"},
      {{{"messages", json::array()}}, "messages"},
      {{{"messages", "hi"}}, "messages"},
      {{{"messages", {{{"role", "wizard"}, {"content", "x"}}}}}, "messages"},
      {{{"messages", {{{"content", "x"}}}}}, "messages"},
      {{{"messages", {{{"role", "user"}}}}}, "messages"},
      {{{"messages", {{{"role", "user"}, {"content", 5}}}}}, "messages"},
      {{{"messages", {{{"role", "user"}, {"content", {{{"type", "image_url"}, {"image_url", "x"}}}}}}}}, "messages"},
      {{{"messages", {42}}}, "messages"},
      {{{"model", 5}}, "model"},
      {{{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", {{"type", "string"}, {"multipleOf", 2}}}}}}}}, "response_format"},
      {{{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "x"}}}}}}, "response_format"},
      {{{"response_format", {{"type", "regex"}}}}, "response_format"},
      {{{"guided_regex", "(a"}}, "guided_regex"},
      {{{"guided_regex", 5}}, "guided_regex"},
      {{{"guided_choice", json::array()}}, "guided_choice"},
      {{{"guided_grammar", "root ::= <tok>"}}, "guided_grammar"},
      {{{"guided_json", "not json"}}, "guided_json"},
      {{{"guided_regex", "a"}, {"guided_choice", {"x"}}}, "guided_choice"},
      {{{"structured_outputs", {{"regex", "a"}, {"choice", {"b"}}}}}, "structured_outputs"},
      {{{"structured_outputs", {{"structural_tag", "x"}}}}, "structured_outputs"},
      {{{"any_whitespace", "yes"}}, "any_whitespace"},
      {{{"tool_choice", "required"}}, "tool_choice"},
      {{{"tool_choice", {{"type", "function"}, {"function", {{"name", "f"}}}}}}, "tool_choice"},
      {{{"tool_choice", {{"type", "function"}, {"function", {{"name", "f"}}}}},
        {"tools", {{{"type", "function"}, {"function", {{"name", "g"}}}}}}}, "tool_choice"},
      {{{"tool_choice", "required"}, {"response_format", {{"type", "json_object"}}},
        {"tools", {{{"type", "function"}, {"function", {{"name", "g"}}}}}}}, "tool_choice"},
      {{{"tools", {{{"type", "code"}}}}}, "tools"},
      {{{"functions", json::array({1})}}, "functions"},
      {{{"frobnicate", 1}}, "frobnicate"},
      {{{"chat_template_kwargs", 3}}, "chat_template_kwargs"},
      {{{"best_of", 3}}, "best_of"},
  };
  for (auto& [extra, param] : cases) {
    json body = chat_body();
    for (auto it = extra.begin(); it != extra.end(); ++it) body[it.key()] = it.value();
    auto [status, got] = chat_error(body);
    EXPECT_EQ(status, 400) << extra.dump();
    EXPECT_EQ(got, param) << extra.dump();
  }
  EXPECT_EQ(chat_error(json{{"model", "m"}}).second, "messages");
}

TEST(OpenAiRequest, JsonResponseFormatsCarryAGrammar) {
  auto obj = parse_chat_request(chat_body({{"response_format", {{"type", "json_object"}}}}), 1000);
  EXPECT_NE(obj.params.grammar, nullptr);
  auto sch = parse_chat_request(
      chat_body({{"response_format", {{"type", "json_schema"},
                                      {"json_schema", {{"name", "p"}, {"strict", true}, {"schema", {{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}}}, {"required", {"a"}}}}}}}}}),
      1000);
  ASSERT_NE(sch.params.grammar, nullptr);
  structured::GrammarMatcher m(sch.params.grammar);
  EXPECT_TRUE(m.advance(std::string_view(R"({"a":12})")));
  EXPECT_TRUE(m.accepts());
  try {
    parse_chat_request(chat_body({{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "p"}, {"schema", {{"type", "integer"}, {"multipleOf", 3}}}}}}}}), 1000);
    ADD_FAILURE() << "multipleOf accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("'multipleOf'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(parse_chat_request(chat_body({{"response_format", {{"type", "text"}}}}), 1000).params.grammar, nullptr);
}

bool grammar_accepts(const ParsedRequest& r, std::string_view text) {
  if (!r.params.grammar) return false;
  structured::GrammarMatcher m(r.params.grammar);
  return m.advance(text) && m.accepts();
}

TEST(OpenAiRequest, GuidedFormsAndStructuredOutputsCarryAGrammar) {
  const json schema = {{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}}}, {"required", {"a"}}};
  EXPECT_TRUE(grammar_accepts(parse_chat_request(chat_body({{"guided_json", schema}}), 1000), R"({"a":1})"));
  EXPECT_TRUE(grammar_accepts(parse_completion_request({{"prompt", "x"}, {"guided_json", schema.dump()}}, 1000), R"({"a":1})"));
  EXPECT_TRUE(grammar_accepts(parse_chat_request(chat_body({{"guided_regex", "[0-9]{3}-x"}}), 1000), "123-x"));
  auto choice = parse_chat_request(chat_body({{"guided_choice", {"yes", "no"}}}), 1000);
  EXPECT_TRUE(grammar_accepts(choice, "no"));
  EXPECT_FALSE(grammar_accepts(choice, "maybe"));
  EXPECT_TRUE(grammar_accepts(parse_chat_request(chat_body({{"guided_grammar", "root ::= \"a\"+"}}), 1000), "aaa"));
  EXPECT_TRUE(grammar_accepts(parse_chat_request(chat_body({{"structured_outputs", {{"json", schema}}}}), 1000), R"({"a":1})"));
  EXPECT_TRUE(grammar_accepts(parse_chat_request(chat_body({{"structured_outputs", {{"regex", "b+"}}}}), 1000), "bb"));
  EXPECT_TRUE(grammar_accepts(parse_chat_request(chat_body({{"structured_outputs", {{"choice", {"x"}}}}}), 1000), "x"));
  EXPECT_TRUE(grammar_accepts(parse_chat_request(chat_body({{"structured_outputs", {{"grammar", "root ::= [xy]"}}}}), 1000), "y"));
  EXPECT_TRUE(grammar_accepts(parse_chat_request(chat_body({{"structured_outputs", {{"json_object", true}}}}), 1000), "{}"));
  // White space: compact unless asked for.
  EXPECT_FALSE(grammar_accepts(parse_chat_request(chat_body({{"guided_json", schema}}), 1000), R"({ "a": 1 })"));
  EXPECT_TRUE(grammar_accepts(parse_chat_request(chat_body({{"guided_json", schema}, {"any_whitespace", true}}), 1000), R"({ "a": 1 })"));
  EXPECT_TRUE(grammar_accepts(parse_chat_request(chat_body({{"structured_outputs", {{"json", schema}, {"disable_any_whitespace", false}}}}), 1000),
                              R"({ "a": 1 })"));
  // The same schema twice is one compiled grammar (the cache).
  auto a = parse_chat_request(chat_body({{"guided_json", schema}}), 1000);
  auto b = parse_chat_request(chat_body({{"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "s"}, {"schema", schema}}}}}}), 1000);
  EXPECT_EQ(a.params.grammar, b.params.grammar);
  // tool_choice required / named are parsed here and compiled by the server (the model's syntax).
  const json tools = {{{"type", "function"}, {"function", {{"name", "f"}}}}};
  auto req = parse_chat_request(chat_body({{"tools", tools}, {"tool_choice", "required"}}), 1000);
  EXPECT_TRUE(req.tool_choice_required);
  auto named = parse_chat_request(chat_body({{"tools", tools}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "f"}}}}}}), 1000);
  EXPECT_EQ(named.tool_choice_name, "f");
}

TEST(OpenAiRequest, NullMeansAbsentAndTextFormatIsAccepted) {
  auto r = parse_chat_request(chat_body({{"temperature", nullptr}, {"response_format", {{"type", "text"}}},
                                         {"tool_choice", "none"}, {"stop", {"a", "b"}}}),
                              1000);
  EXPECT_FLOAT_EQ(r.params.temperature, 1.0f);
  EXPECT_TRUE(r.tool_choice_none);
  EXPECT_EQ(r.params.stop.size(), 2u);
  EXPECT_FALSE(r.max_tokens_given);
}

TEST(OpenAiRequest, CompletionPromptShapes) {
  auto a = parse_completion_request({{"prompt", "hello"}}, 1000);
  ASSERT_EQ(a.prompts.size(), 1u);
  EXPECT_EQ(*a.prompts[0].text, "hello");
  EXPECT_EQ(a.params.max_tokens, 16);

  auto b = parse_completion_request({{"prompt", {"x", "y"}}}, 1000);
  ASSERT_EQ(b.prompts.size(), 2u);
  EXPECT_EQ(*b.prompts[1].text, "y");

  auto c = parse_completion_request({{"prompt", {1, 2, 3}}}, 1000);
  ASSERT_EQ(c.prompts.size(), 1u);
  EXPECT_EQ(c.prompts[0].token_ids, (std::vector<int32_t>{1, 2, 3}));

  auto d = parse_completion_request({{"prompt", {{1, 2}, {3}}}, {"logprobs", 2}, {"echo", false}}, 1000);
  ASSERT_EQ(d.prompts.size(), 2u);
  EXPECT_EQ(d.prompts[1].token_ids, (std::vector<int32_t>{3}));
  EXPECT_TRUE(d.logprobs);
  EXPECT_EQ(d.params.logprobs, 2);
}

TEST(OpenAiRequest, CompletionRejects) {
  EXPECT_EQ(completion_error(json::object()).second, "prompt");
  EXPECT_EQ(completion_error({{"prompt", ""}}).second, "prompt");
  EXPECT_EQ(completion_error({{"prompt", json::array()}}).second, "prompt");
  EXPECT_EQ(completion_error({{"prompt", {1, 5000}}}).second, "prompt");
  EXPECT_EQ(completion_error({{"prompt", {-1}}}).second, "prompt");
  EXPECT_EQ(completion_error({{"prompt", {{1}, json::array()}}}).second, "prompt");
  EXPECT_EQ(completion_error({{"prompt", 7}}).second, "prompt");
  EXPECT_EQ(completion_error({{"prompt", "x"}, {"logprobs", true}}).second, "logprobs");
  EXPECT_EQ(completion_error({{"prompt", "x"}, {"suffix", "y"}}).second, "suffix");
  EXPECT_EQ(completion_error({{"prompt", "x"}, {"messages", json::array()}}).second, "messages");
  EXPECT_EQ(completion_error({{"prompt", "x"}, {"echo", true}, {"logprobs", 1}}).second, "echo");
}

TEST(OpenAiRequest, JsonBody) {
  EXPECT_NO_THROW(parse_json_body("{\"a\":1}"));
  for (const char* bad : {"", "{", "[1,2]", "\"str\"", "{\"a\":}", "{\"a\":\"\xff\"}", "nul", "{\"a\":1}x"}) {
    try {
      parse_json_body(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400);
    }
  }
}

TEST(OpenAiRequest, DeepNestingIsRefused) {
  std::string deep = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_THROW(parse_json_body(deep), ApiError);
  std::string in_string = "{\"a\":\"" + std::string(1000, '[') + "\"}";  // brackets inside a string
  EXPECT_NO_THROW(parse_json_body(in_string));
}

TEST(OpenAiRequest, FitToContext) {
  auto r = parse_chat_request(chat_body(), 1000);
  fit_to_context(r, 10, 100);
  EXPECT_EQ(r.params.max_tokens, 90);  // the rest of the context

  auto r2 = parse_chat_request(chat_body({{"max_tokens", 50}}), 1000);
  try {
    fit_to_context(r2, 60, 100);
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    std::string msg = e.what();
    EXPECT_NE(msg.find("100"), std::string::npos) << msg;
    EXPECT_NE(msg.find("110"), std::string::npos) << msg;
    EXPECT_NE(msg.find("60"), std::string::npos) << msg;
  }
  auto r3 = parse_chat_request(chat_body(), 1000);
  EXPECT_THROW(fit_to_context(r3, 100, 100), ApiError);
  EXPECT_THROW(fit_to_context(r3, 0, 100), ApiError);
}

TEST(ModelLoader, ByteSizes) {
  EXPECT_EQ(ferrum::server::parse_byte_size("4GiB"), 4ull << 30);
  EXPECT_EQ(ferrum::server::parse_byte_size("512MiB"), 512ull << 20);
  EXPECT_EQ(ferrum::server::parse_byte_size("2G"), 2000000000ull);
  EXPECT_EQ(ferrum::server::parse_byte_size("1.5 GB"), 1500000000ull);
  EXPECT_EQ(ferrum::server::parse_byte_size("1000"), 1000ull);
  for (const char* bad : {"", "abc", "-1G", "4XB", "0", "1e30"}) EXPECT_THROW(ferrum::server::parse_byte_size(bad), ferrum::Error) << bad;
}
