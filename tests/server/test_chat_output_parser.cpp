// Reasoning / tool-call splitting: the same result whatever the delta boundaries are.
#include <gtest/gtest.h>

#include "server/chat_output_parser.h"

using namespace ferrum;
using namespace ferrum::server;

namespace {
struct Collected {
  std::string content, reasoning;
  json calls = json::array();
};

// Feeds text in pieces of `step` bytes (0: all at once) and collects everything.
Collected run(const std::string& text, TagParserOptions o, size_t step) {
  TaggedOutputParser p(o);
  Collected c;
  auto take = [&](const ChatPiece& piece) {
    c.content += piece.content;
    c.reasoning += piece.reasoning;
    if (piece.tool_calls.is_array())
      for (auto& t : piece.tool_calls) c.calls.push_back(t);
  };
  if (step == 0) step = text.size() ? text.size() : 1;
  for (size_t i = 0; i < text.size(); i += step) take(p.feed(text.substr(i, step)));
  take(p.finish());
  return c;
}

void expect_all_splits(const std::string& text, TagParserOptions o, const std::string& content,
                       const std::string& reasoning, size_t n_calls) {
  for (size_t step : {0, 1, 2, 3, 5, 7}) {
    Collected c = run(text, o, step);
    EXPECT_EQ(c.content, content) << "step " << step;
    EXPECT_EQ(c.reasoning, reasoning) << "step " << step;
    EXPECT_EQ(c.calls.size(), n_calls) << "step " << step;
  }
}
}  // namespace

TEST(ChatOutputParser, Reasoning) {
  TagParserOptions o{.reasoning = true};
  expect_all_splits("<think>\nhmm, 2+2</think>\n\nIt is 4.", o, "It is 4.", "\nhmm, 2+2", 0);
  expect_all_splits("No thinking here <think>", o, "No thinking here <think>", "", 0);
  expect_all_splits("<thin", o, "<thin", "", 0);
  o.starts_in_reasoning = true;
  expect_all_splits("deep thought</think>\n\nAnswer", o, "Answer", "deep thought", 0);
  expect_all_splits("never closed", o, "", "never closed", 0);
}

TEST(ChatOutputParser, ToolCalls) {
  TagParserOptions o{.reasoning = true, .tools = true};
  std::string text =
      "<think>need weather</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
      "<tool_call>{\"name\": \"now\", \"arguments\": {}}</tool_call>";
  expect_all_splits(text, o, "", "need weather", 2);
  Collected c = run(text, o, 3);
  EXPECT_EQ(c.calls[0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(c.calls[0]["function"]["arguments"].get<std::string>())["city"], "Paris");
  EXPECT_EQ(c.calls[0]["type"], "function");
  EXPECT_EQ(c.calls[0]["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_NE(c.calls[0]["id"], c.calls[1]["id"]);
  // Not JSON inside the tags: the text is kept as content, nothing is lost.
  expect_all_splits("a <tool_call>oops</tool_call>", o, "a <tool_call>oops</tool_call>", "", 0);
  // Tools off: tags are plain text.
  expect_all_splits("<tool_call>{\"name\":\"f\"}</tool_call>", TagParserOptions{}, "<tool_call>{\"name\":\"f\"}</tool_call>", "", 0);
}
