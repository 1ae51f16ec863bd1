// Reasoning and tool-call parsing of recorded model outputs (well-formed and malformed), whole
// and streamed in every chunking: both must give the same result.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "chat/output_parser.h"
#include "core/json.h"

namespace ferrum::chat {
namespace {

struct Sample {
  const char* name;
  ParserOptions options;
  std::string text;
  std::string content;
  std::string reasoning;
  std::vector<std::pair<std::string, std::string>> calls;  // name, arguments JSON
};

ParserOptions opts(bool reasoning, ToolCallFormat tools, bool starts_in_reasoning = false) {
  ParserOptions o;
  o.reasoning = reasoning;
  o.tools = tools;
  o.starts_in_reasoning = starts_in_reasoning;
  o.id_seed = 42;
  return o;
}

std::vector<Sample> samples() {
  using F = ToolCallFormat;
  return {
      {"qwen3_thinking_answer", opts(true, F::Hermes),
       "<think>\nThe user asks for 2+2. That is 4.\n</think>\n\n2 + 2 = 4.", "2 + 2 = 4.",
       "The user asks for 2+2. That is 4.", {}},
      {"qwen3_thinking_tool_call", opts(true, F::Hermes),
       "<think>\nI should call get_weather for Paris.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", "
       "\"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>",
       "", "I should call get_weather for Paris.", {{"get_weather", R"({"city":"Paris","unit":"celsius"})"}}},
      {"qwen3_empty_think_two_calls", opts(true, F::Hermes),
       "<think>\n\n</think>\n\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"naïve café\"}}\n"
       "</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"東京\"}}\n</tool_call>",
       "", "", {{"search", R"({"query":"naïve café"})"}, {"get_weather", R"({"city":"東京"})"}}},
      {"hermes_content_then_call", opts(false, F::Hermes),
       "Let me check that for you.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n"
       "</tool_call>",
       "Let me check that for you.\n", "", {{"get_weather", R"({"city":"Oslo"})"}}},
      {"hermes_unclosed_but_complete_json", opts(false, F::Hermes),
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n", "", "",
       {{"get_weather", R"({"city":"Rome"})"}}},
      {"hermes_unbalanced_braces", opts(false, F::Hermes),
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}\n</tool_call>",
       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}\n</tool_call>", "", {}},
      {"hermes_invalid_json", opts(false, F::Hermes), "Sure.<tool_call>{name: get_weather}</tool_call> Done.",
       "Sure.<tool_call>{name: get_weather}</tool_call> Done.", "", {}},
      {"hermes_tag_text_without_tools", opts(false, F::None), "<tool_call>{\"name\": \"x\"}</tool_call>",
       "<tool_call>{\"name\": \"x\"}</tool_call>", "", {}},
      {"deepseek_r1_starts_in_think", opts(true, F::None, true),
       "Okay, the user wants 17*3. 17*3 = 51.\n</think>\n\nThe answer is **51**.", "The answer is **51**.",
       "Okay, the user wants 17*3. 17*3 = 51.", {}},
      {"unclosed_think_is_reasoning", opts(true, F::None), "<think>\nStill thinking about it", "",
       "Still thinking about it", {}},
      {"no_think_block", opts(true, F::Hermes), "Paris is the capital of France.",
       "Paris is the capital of France.", "", {}},
      {"think_mentioned_later_is_content", opts(true, F::None), "Use the <think> tag.", "Use the <think> tag.", "", {}},
      {"llama3_json_call", opts(false, F::Llama3Json),
       "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}", "", "",
       {{"get_weather", R"({"city":"Paris","unit":"celsius"})"}}},
      {"llama3_python_tag", opts(false, F::Llama3Json),
       "<|python_tag|>{\"name\": \"search\", \"parameters\": {\"query\": \"weather today\"}}", "", "",
       {{"search", R"({"query":"weather today"})"}}},
      {"llama3_two_calls_semicolon", opts(false, F::Llama3Json),
       "{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"x\": 1}}", "", "",
       {{"a", "{}"}, {"b", R"({"x":1})"}}},
      {"llama3_json_answer_not_a_call", opts(false, F::Llama3Json), "{\"answer\": 42}", "{\"answer\": 42}", "", {}},
      {"llama3_unbalanced", opts(false, F::Llama3Json),
       "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}",
       "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}", "", {}},
      {"llama3_plain_text", opts(false, F::Llama3Json), "Hello! {not json} here", "Hello! {not json} here", "", {}},
      {"mistral_array", opts(false, F::Mistral),
       "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": \"search\", "
       "\"arguments\": {\"query\": \"x\"}}]",
       "", "", {{"get_weather", R"({"city":"Paris"})"}, {"search", R"({"query":"x"})"}}},
      {"mistral_args_format", opts(false, F::Mistral), "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Lyon\"}", "", "",
       {{"get_weather", R"({"city":"Lyon"})"}}},
      {"mistral_content_before", opts(false, F::Mistral),
       "Checking.[TOOL_CALLS][{\"name\": \"search\", \"arguments\": {\"query\": \"q\"}}]", "Checking.", "",
       {{"search", R"({"query":"q"})"}}},
      {"mistral_invalid_json", opts(false, F::Mistral),
       "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": }]",
       "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": }]", "", {}},
      {"mistral_truncated", opts(false, F::Mistral), "[TOOL_CALLS] [{\"name\": \"get_weather\", \"argum",
       "[TOOL_CALLS] [{\"name\": \"get_weather\", \"argum", "", {}},
  };
}

void expect_result(const Sample& s, const ParsedDelta& got, const std::string& how) {
  SCOPED_TRACE(std::string(s.name) + " " + how);
  EXPECT_EQ(got.content, s.content);
  EXPECT_EQ(got.reasoning, s.reasoning);
  ASSERT_EQ(got.tool_calls.size(), s.calls.size());
  for (size_t i = 0; i < s.calls.size(); ++i) {
    EXPECT_EQ(got.tool_calls[i].name, s.calls[i].first);
    EXPECT_EQ(json::parse(got.tool_calls[i].arguments), json::parse(s.calls[i].second));
    EXPECT_FALSE(got.tool_calls[i].id.empty());
  }
}

TEST(OutputParser, WholeResponses) {
  for (const auto& s : samples()) expect_result(s, OutputParser::parse(s.text, s.options), "whole");
}

TEST(OutputParser, StreamedInEveryChunkingMatchesWhole) {
  for (const auto& s : samples()) {
    ParsedDelta whole = OutputParser::parse(s.text, s.options);
    for (size_t chunk = 1; chunk <= 8; ++chunk) {
      OutputParser p(s.options);
      ParsedDelta acc;
      for (size_t i = 0; i < s.text.size(); i += chunk) acc.append(p.feed(std::string_view(s.text).substr(i, chunk)));
      acc.append(p.finish());
      expect_result(s, acc, "chunk " + std::to_string(chunk));
      ASSERT_EQ(acc.tool_calls.size(), whole.tool_calls.size());
      for (size_t k = 0; k < acc.tool_calls.size(); ++k) EXPECT_EQ(acc.tool_calls[k].id, whole.tool_calls[k].id);
    }
    for (size_t cut = 0; cut <= s.text.size(); ++cut) {
      OutputParser p(s.options);
      ParsedDelta acc = p.feed(std::string_view(s.text).substr(0, cut));
      acc.append(p.feed(std::string_view(s.text).substr(cut)));
      acc.append(p.finish());
      expect_result(s, acc, "cut at " + std::to_string(cut));
    }
  }
}

TEST(OutputParser, StreamingReleasesContentEarly) {
  OutputParser p(opts(true, ToolCallFormat::Hermes));
  ParsedDelta d = p.feed("<think>\nabc");
  EXPECT_EQ(d.reasoning, "abc");
  d = p.feed(" def</th");
  EXPECT_EQ(d.reasoning, " def");
  d = p.feed("ink>\n\nHello <tool");
  EXPECT_EQ(d.content, "Hello ");
  d = p.feed("bar> x");
  EXPECT_EQ(d.content, "<toolbar> x");
}

TEST(OutputParser, MistralIdsAreNineAlphanumerics) {
  ParsedDelta d = OutputParser::parse("[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {}}]", opts(false, ToolCallFormat::Mistral));
  ASSERT_EQ(d.tool_calls.size(), 1u);
  EXPECT_EQ(d.tool_calls[0].id.size(), 9u);
  for (char c : d.tool_calls[0].id) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)));
}

TEST(OutputParser, NeverThrowsOnGarbage) {
  std::string garbage = "<tool_call>{{{[[[\"\\\"</tool_call>[TOOL_CALLS]]]}}<think></think></think><|python_tag|>{";
  for (auto f : {ToolCallFormat::None, ToolCallFormat::Hermes, ToolCallFormat::Llama3Json, ToolCallFormat::Mistral}) {
    for (bool r : {false, true}) {
      ParsedDelta d;
      EXPECT_NO_THROW(d = OutputParser::parse(garbage, opts(r, f)));
      EXPECT_FALSE(d.empty());
    }
  }
}

TEST(OutputParser, LongArgumentsStreamInLinearTime) {
  std::string big(200000, 'x');
  for (auto f : {ToolCallFormat::Hermes, ToolCallFormat::Llama3Json, ToolCallFormat::Mistral}) {
    std::string text = f == ToolCallFormat::Hermes ? "<tool_call>{\"name\": \"f\", \"arguments\": {\"s\": \"" + big + "\"}}</tool_call>"
                       : f == ToolCallFormat::Mistral ? "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"s\": \"" + big + "\"}}]"
                                                      : "{\"name\": \"f\", \"parameters\": {\"s\": \"" + big + "\"}}";
    OutputParser p(opts(false, f));
    ParsedDelta acc;
    for (size_t i = 0; i < text.size(); i += 3) acc.append(p.feed(std::string_view(text).substr(i, 3)));
    acc.append(p.finish());
    ASSERT_EQ(acc.tool_calls.size(), 1u);
    EXPECT_EQ(acc.tool_calls[0].arguments.size(), big.size() + 8);
    EXPECT_TRUE(acc.content.empty());
  }
}

TEST(OutputParser, DetectsOptionsFromRealTemplates) {
  auto source = [](const std::string& name) {
    std::ifstream in(std::string(FERRUM_SOURCE_DIR) + "/tests/fixtures/chat_templates/" + name + ".jinja");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  struct Expect {
    const char* name;
    const char* prompt_end;
    bool reasoning, starts_in_reasoning;
    ToolCallFormat tools;
  };
  for (const Expect& e : {Expect{"qwen3", "<|im_start|>assistant\n", true, false, ToolCallFormat::Hermes},
                          Expect{"qwen2_5", "<|im_start|>assistant\n", false, false, ToolCallFormat::Hermes},
                          Expect{"llama3_1", "assistant<|end_header_id|>\n\n", false, false, ToolCallFormat::Llama3Json},
                          Expect{"llama3_2", "assistant<|end_header_id|>\n\n", false, false, ToolCallFormat::Llama3Json},
                          Expect{"mistral_v3", "[/INST]", false, false, ToolCallFormat::Mistral},
                          Expect{"mistral_nemo", "[/INST]", false, false, ToolCallFormat::Mistral},
                          Expect{"deepseek_r1_distill", "<｜Assistant｜><think>\n", true, true, ToolCallFormat::None},
                          Expect{"gemma3", "<start_of_turn>model\n", false, false, ToolCallFormat::None}}) {
    SCOPED_TRACE(e.name);
    ParserOptions o = detect_parser_options(source(e.name), e.prompt_end, true);
    EXPECT_EQ(o.reasoning, e.reasoning);
    EXPECT_EQ(o.starts_in_reasoning, e.starts_in_reasoning);
    EXPECT_EQ(o.tools, e.tools);
    EXPECT_EQ(detect_parser_options(source(e.name), e.prompt_end, false).tools, ToolCallFormat::None);
  }
}

TEST(OutputParser, PromptOpensReasoning) {
  EXPECT_TRUE(prompt_opens_reasoning("<｜Assistant｜><think>\n"));
  EXPECT_TRUE(prompt_opens_reasoning("<|im_start|>assistant\n<think>"));
  EXPECT_FALSE(prompt_opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  EXPECT_FALSE(prompt_opens_reasoning("<|im_start|>assistant\n"));
}

}  // namespace
}  // namespace ferrum::chat
