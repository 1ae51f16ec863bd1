// Splits a chat model's generated text into reasoning (<think> ... </think>), tool calls
// (Hermes-style <tool_call>{"name": ..., "arguments": {...}}</tool_call>, as Qwen2.5/Qwen3 and
// many others emit) and plain content, incrementally: a tag split across deltas is held back
// until it is decided, so streamed and non-streamed outputs agree.
#pragma once
#include <string>

#include "server/chat_formatter.h"

namespace ferrum::server {

struct TagParserOptions {
  bool reasoning = false;          // the template knows <think> blocks
  bool starts_in_reasoning = false;  // the prompt already opened <think>
  bool tools = false;              // parse <tool_call> blocks
};

class TaggedOutputParser : public ChatOutputParser {
 public:
  explicit TaggedOutputParser(TagParserOptions options);
  ChatPiece feed(std::string_view text) override;
  ChatPiece finish() override;

 private:
  enum class Mode { Start, Reasoning, Content, ToolCall };
  void step(ChatPiece& out, bool final);
  void emit(ChatPiece& out, std::string_view text);
  void close_tool_call(ChatPiece& out, const std::string& body, bool terminated);

  TagParserOptions options_;
  Mode mode_;
  std::string pending_;  // text not yet assigned (in ToolCall mode: the call's body so far)
  int calls_ = 0;
  std::string_view strip_;  // characters dropped at the start of the next content
};

}  // namespace ferrum::server
