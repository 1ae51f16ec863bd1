// Reasoning and tool calls end to end through the server, with the chat component's template
// and output parser and a fake engine that "generates" a scripted reply.
#include <gtest/gtest.h>

#include "chat/output_parser.h"
#include "server/openai_request.h"
#include "structured/grammar.h"
#include "server/template_chat.h"
#include "server_fixture.h"

using namespace ferrum;
using namespace ferrum::server;
using namespace ferrum::testing;

namespace {

const char* kTemplate =
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    "{% if tools %}[tools:{% for t in tools %}{{ t.function.name }}{% endfor %}]{% endif %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}";

const char* kScript =
    "<think>need the weather</think>\n\n"
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";

class ToolsFixture : public ServerFixture {
 protected:
  void start_with(chat::ToolCallFormat format) {
    chat_ = std::make_shared<TemplateChatFormatter>(
        chat::ChatTemplate({{"default", kTemplate}}, ordered_json{{"bos_token", "<s>"}}), /*reasoning=*/true, format);
    start();
    engine_->set_script(kScript);
  }
  static json request(json extra = json::object()) {
    json b = {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "weather?"}}}}, {"max_tokens", 200},
              {"tools", {{{"type", "function"}, {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}}}}}}}}};
    b.update(extra);
    return b;
  }
};

}  // namespace

TEST_F(ToolsFixture, NonStreamedToolCallAndReasoning) {
  start_with(chat::ToolCallFormat::Hermes);
  auto r = post("/v1/chat/completions", request());
  ASSERT_EQ(r.status, 200) << r.body;
  json choice = body_json(r)["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_TRUE(choice["message"]["content"].is_null());
  EXPECT_EQ(choice["message"]["reasoning_content"], "need the weather");
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u);
  json call = choice["message"]["tool_calls"][0];
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(call["function"]["arguments"].get<std::string>()), json({{"city", "Paris"}}));
  EXPECT_FALSE(call["id"].get<std::string>().empty());
  // The prompt carried the tools (the template lists them).
  std::string prompt = "<user>weather?[tools:get_weather]<assistant>";
  EXPECT_EQ(body_json(r)["usage"]["prompt_tokens"], prompt.size());
}

TEST_F(ToolsFixture, StreamedToolCallAndReasoning) {
  start_with(chat::ToolCallFormat::Hermes);
  auto r = post("/v1/chat/completions", request({{"stream", true}}));
  ASSERT_EQ(r.status, 200);
  std::string reasoning, content, finish;
  json calls = json::array();
  for (auto& ev : sse_payloads(r.body)) {
    if (ev == "[DONE]") break;
    json c = json::parse(ev)["choices"][0];
    reasoning += c["delta"].value("reasoning_content", "");
    if (c["delta"].contains("content")) content += c["delta"]["content"].get<std::string>();
    if (c["delta"].contains("tool_calls"))
      for (auto& t : c["delta"]["tool_calls"]) calls.push_back(t);
    if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
  }
  EXPECT_EQ(reasoning, "need the weather");
  EXPECT_EQ(content, "");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0]["index"], 0);
  EXPECT_EQ(calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(calls[0]["function"]["arguments"].get<std::string>())["city"], "Paris");
  EXPECT_EQ(finish, "tool_calls");
}

TEST_F(ToolsFixture, ToolChoiceNoneLeavesToolsOut) {
  start_with(chat::ToolCallFormat::Hermes);
  auto r = post("/v1/chat/completions", request({{"tool_choice", "none"}}));
  ASSERT_EQ(r.status, 200);
  json j = body_json(r);
  EXPECT_EQ(j["usage"]["prompt_tokens"], std::string("<user>weather?<assistant>").size());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_NE(j["choices"][0]["message"]["content"].get<std::string>().find("<tool_call>"), std::string::npos);
  EXPECT_FALSE(j["choices"][0]["message"].contains("tool_calls"));
}

TEST_F(ToolsFixture, ModelWithoutToolFormatRefusesTools) {
  start_with(chat::ToolCallFormat::None);
  auto r = post("/v1/chat/completions", request());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body_json(r)["error"]["param"], "tools");
  EXPECT_EQ(post("/v1/chat/completions", request({{"tool_choice", "none"}})).status, 200);
}

// tool_choice required / named: the engine gets a grammar of the model's tool-call syntax with
// the tool's parameters schema; a reasoning model's constraint starts after </think>.
TEST_F(ToolsFixture, ToolChoiceRequiredAndNamedConstrainTheCall) {
  start_with(chat::ToolCallFormat::Hermes);
  json tools = {{{"type", "function"}, {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"},
      {"properties", {{"city", {{"type", "string"}}}}}, {"required", {"city"}}, {"additionalProperties", false}}}}}},
                {{"type", "function"}, {"function", {{"name", "get_time"}}}}};
  for (const json& choice : {json("required"), json{{"type", "function"}, {"function", {{"name", "get_weather"}}}}}) {
    auto r = post("/v1/chat/completions", request({{"tools", tools}, {"tool_choice", choice}}));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(body_json(r)["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather");
    const SamplingParams p = engine_->last_params();
    ASSERT_NE(p.grammar, nullptr) << choice.dump();
    EXPECT_EQ(p.grammar_after, "</think>");
    auto accepts = [&](std::string_view text) {
      structured::GrammarMatcher m(p.grammar);
      return m.advance(text) && m.accepts();
    };
    const std::string call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call>";
    EXPECT_TRUE(accepts(call));
    EXPECT_FALSE(accepts("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"town\":\"Paris\"}}\n</tool_call>"));
    EXPECT_FALSE(accepts("Sure!"));
    const std::string other = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
    EXPECT_EQ(accepts(call + "\n" + other), choice == "required");  // named: exactly one call to it
    // What the grammar allows, the output parser reads back as calls with valid arguments.
    chat::ParserOptions o;
    o.tools = chat::ToolCallFormat::Hermes;
    auto parsed = chat::OutputParser::parse(call + "\n" + other, o);
    ASSERT_EQ(parsed.tool_calls.size(), 2u);
    EXPECT_EQ(json::parse(parsed.tool_calls[0].arguments), json({{"city", "Paris"}}));
  }
  auto bad = post("/v1/chat/completions", request({{"tools", tools}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}}}));
  EXPECT_EQ(bad.status, 400);
}

TEST_F(ToolsFixture, ToolChoiceRequiredNeedsASyntaxWithAGrammar) {
  start_with(chat::ToolCallFormat::Mistral);
  auto r = post("/v1/chat/completions", request({{"tool_choice", "required"}}));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body_json(r)["error"]["param"], "tool_choice");
  EXPECT_NE(body_json(r)["error"]["message"].get<std::string>().find("tool-call syntax"), std::string::npos);
}

TEST(TemplateChat, StructuredOutputStartsAfterReasoning) {
  const chat::ChatTemplate tmpl({{"default", "x"}}, ordered_json::object());
  TemplateChatFormatter reasoning(tmpl, true, chat::ToolCallFormat::Hermes), plain(tmpl, false, chat::ToolCallFormat::Hermes);
  EXPECT_EQ(reasoning.structured_output_after("<|im_start|>assistant\n"), "</think>");
  EXPECT_EQ(reasoning.structured_output_after("<|im_start|>assistant\n<think>\n"), "</think>");
  EXPECT_EQ(reasoning.structured_output_after("<|im_start|>assistant\n<think>\n\n</think>\n\n"), "");  // thinking off
  EXPECT_EQ(plain.structured_output_after("<|im_start|>assistant\n"), "");
  EXPECT_EQ(reasoning.tool_call_syntax(), structured::ToolCallSyntax::Hermes);
}

TEST(TemplateChat, ContinueFinalMessageAndKwargs) {
  // ChatML closes every message; continuing the last one cuts the prompt after its content.
  TemplateChatFormatter chat(
      chat::ChatTemplate({{"default", "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                                      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
                                      "{% if enable_thinking is defined and not enable_thinking %}<think></think>{% endif %}"}},
                         ordered_json::object()),
      false, chat::ToolCallFormat::None);
  json msgs = {{{"role", "user"}, {"content", "Tell a story"}}, {{"role", "assistant"}, {"content", "Once upon"}}};
  EXPECT_EQ(chat.render(msgs, nullptr, false, true, json::object()),
            "<|im_start|>user\nTell a story<|im_end|>\n<|im_start|>assistant\nOnce upon");
  json one = {{{"role", "user"}, {"content", "Hi"}}};
  EXPECT_EQ(chat.render(one, nullptr, true, false, {{"enable_thinking", false}}),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think></think>");
  EXPECT_EQ(chat.render(one, nullptr, true, false, json::object()), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(TemplateChat, MessageAndToolKeysKeepTheClientsOrder) {
  // Templates that print a message or a tool schema (tojson, items()) must see the keys as
  // the client sent them, as Python's json.loads keeps them.
  TemplateChatFormatter chat(
      chat::ChatTemplate({{"default", "{% for m in messages %}{% for k, v in m.items() %}{{ k }}={{ v }};{% endfor %}{% endfor %}"
                                      "{% for t in tools %}{{ t | tojson }}{% endfor %}"}},
                         ordered_json::object()),
      false, chat::ToolCallFormat::Hermes);
  ParsedRequest req = parse_chat_request(
      parse_json_body(R"({"messages": [{"role": "user", "name": "bob", "content": "hi"}],
                          "tools": [{"type": "function", "function": {"name": "f", "parameters": {"z": 1, "a": 2}}}]})"),
      1000);
  EXPECT_EQ(chat.render(req.messages, req.tools, false, false, req.chat_template_kwargs),
            R"(role=user;name=bob;content=hi;{"type": "function", "function": {"name": "f", "parameters": {"z": 1, "a": 2}}})");
}
