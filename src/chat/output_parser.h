// Splits what a chat model generates into reasoning (<think> ... </think>), tool calls and
// plain content, either at once or delta by delta as it streams. Both paths run the same
// state machine, so streamed and non-streamed output give the same calls. Malformed model
// output (unbalanced braces, invalid JSON, an unclosed tag) falls back to plain content; the
// parser never throws on model text.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ferrum::chat {

enum class ToolCallFormat {
  None,
  Hermes,     // <tool_call>{"name": ..., "arguments": {...}}</tool_call> (Qwen2.5/3, Hermes ...)
  Llama3Json, // {"name": ..., "parameters": {...}} as the whole reply (Llama 3.1/3.2/3.3)
  Mistral,    // [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...] or [TOOL_CALLS]name[ARGS]{...}
};

struct ParserOptions {
  bool reasoning = false;            // the model writes <think> ... </think>
  bool starts_in_reasoning = false;  // the prompt already opened <think>
  ToolCallFormat tools = ToolCallFormat::None;
  std::string think_open = "<think>";
  std::string think_close = "</think>";
  uint64_t id_seed = 0;              // tool-call ids are derived from it (0: from the clock)
};

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text, as OpenAI's function.arguments
};

// What one feed() or finish() decided; append the fields to what came before.
struct ParsedDelta {
  std::string content;
  std::string reasoning;
  std::vector<ToolCall> tool_calls;  // complete calls, in order
  bool empty() const { return content.empty() && reasoning.empty() && tool_calls.empty(); }
  void append(const ParsedDelta& other);
};

class OutputParser {
 public:
  explicit OutputParser(ParserOptions options);
  ParsedDelta feed(std::string_view text);
  ParsedDelta finish();  // releases what is held back, once generation ended

  // Parses a whole response.
  static ParsedDelta parse(std::string_view text, const ParserOptions& options);

 private:
  enum class Mode { Start, Reasoning, Content, HermesCall, JsonCalls, MistralCalls };
  void step(ParsedDelta& out, bool final);
  bool step_content(ParsedDelta& out, bool final);
  void emit_content(ParsedDelta& out, std::string text);
  std::string next_id();
  bool add_call(ParsedDelta& out, const std::string& json_text, bool llama_style);

  ParserOptions opt_;
  Mode mode_;
  std::string buf_;            // undecided text
  bool strip_leading_ = false;  // drop whitespace at the start of the next content/reasoning
  bool after_call_ = false;     // whitespace between tool calls is dropped
  bool content_started_ = false;
  size_t scan_from_ = 0;        // buffer length already searched for a closing tag/bracket
  std::string raw_;            // the marker that opened the current tool-call block
  uint64_t rng_;
};

// Whether a rendered prompt ends inside an opened think block (DeepSeek-R1, Qwen3 thinking
// templates that add "<think>\n" to the generation prompt): the model's output then starts
// inside its reasoning, so pass starts_in_reasoning.
bool prompt_opens_reasoning(std::string_view prompt, std::string_view think_open = "<think>");

// Parser options for a model, read off its chat template source: <think> blocks, the tool-call
// syntax the template teaches (<tool_call>, [TOOL_CALLS], Llama 3's "parameters" JSON), and
// whether the rendered prompt leaves the model inside its reasoning. tools_enabled: the request
// offered tools (tool calls are parsed only then).
ParserOptions detect_parser_options(std::string_view template_source, std::string_view prompt, bool tools_enabled);

}  // namespace ferrum::chat
