// What the server needs from the chat component: rendering a conversation into a prompt, and
// splitting generated text into content, reasoning and tool calls as it streams. The CLI wires
// an implementation over src/chat/; tests use their own.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/json.h"
#include "structured/tool_call_grammar.h"

namespace ferrum::server {

// A piece of one choice's output, split by kind. tool_calls: null or an OpenAI tool_calls
// array of complete calls ({id, type: "function", function: {name, arguments (a string)}}).
struct ChatPiece {
  std::string content;
  std::string reasoning;
  json tool_calls;
  bool empty() const { return content.empty() && reasoning.empty() && !tool_calls.is_array(); }
};

// One per choice: fed the generated text in order; holds back what it cannot decide yet.
class ChatOutputParser {
 public:
  virtual ~ChatOutputParser() = default;
  virtual ChatPiece feed(std::string_view text) = 0;
  virtual ChatPiece finish() = 0;  // everything still held, once generation ended
};

class ChatFormatter {
 public:
  virtual ~ChatFormatter() = default;
  // The prompt text for the conversation; throws ferrum::InvalidRequest when the template
  // rejects it (e.g. roles out of order) and ferrum::Error when the template itself fails.
  virtual std::string render(const ordered_json& messages, const ordered_json& tools, bool add_generation_prompt,
                             bool continue_final_message, const ordered_json& template_kwargs) const = 0;
  // Whether the model's tool-call syntax is known (else requests offering tools get a 400).
  virtual bool supports_tools() const { return true; }
  // A parser for one choice; tools_enabled when the request offered tools (tool_choice auto);
  // prompt is the rendered prompt (it tells whether the model starts inside its reasoning).
  virtual std::unique_ptr<ChatOutputParser> make_parser(bool tools_enabled, const ordered_json& template_kwargs,
                                                        const std::string& prompt) const = 0;
  // The tool-call syntax to constrain tool_choice "required" / named to; none when the
  // model's syntax has no grammar (unknown, or Mistral's [TOOL_CALLS], a special token).
  virtual std::optional<structured::ToolCallSyntax> tool_call_syntax() const { return std::nullopt; }
  // Where structured output starts after the rendered prompt: "</think>" for a reasoning model
  // whose reasoning is still to come (it stays free), empty when the output is constrained
  // from its first token.
  virtual std::string structured_output_after(const std::string& prompt) const { return {}; }
};

// Passes text through as content (models without reasoning or tool-call syntax).
class PlainOutputParser : public ChatOutputParser {
 public:
  ChatPiece feed(std::string_view text) override { return {std::string(text), {}, nullptr}; }
  ChatPiece finish() override { return {}; }
};

}  // namespace ferrum::server
