// A model's chat template: where it is found (tokenizer_config.json, chat_template.jinja,
// chat_template.json, a user file), the special tokens it sees, and rendering a conversation
// into the prompt exactly as transformers' apply_chat_template(tokenize=False) does.
#pragma once
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "chat/jinja_template.h"
#include "core/json.h"

namespace ferrum::chat {

struct ChatRequest {
  ordered_json messages = ordered_json::array();  // OpenAI-style messages
  ordered_json tools = nullptr;                    // null or an array of tool definitions
  ordered_json documents = nullptr;                // null or an array of documents
  bool add_generation_prompt = true;
  ordered_json kwargs = ordered_json::object();    // extra template variables (enable_thinking ...)
};

class ChatTemplate {
 public:
  // `templates` maps names to sources ("default" for a single template); `special_tokens`
  // holds bos_token, eos_token ... as strings (or a list for additional_special_tokens).
  ChatTemplate(std::map<std::string, std::string> templates, ordered_json special_tokens);

  // Finds the template of a model directory: chat_template.jinja, then chat_template.json,
  // then tokenizer_config.json's chat_template; special tokens come from tokenizer_config.json.
  // Throws ferrum::Error if the directory has no chat template.
  static ChatTemplate from_model_dir(const std::string& dir);
  // A template from a user file, with the special tokens of `model_dir` (may be empty).
  static ChatTemplate from_file(const std::string& path, const std::string& model_dir = "");
  // Reads the special tokens of a tokenizer_config.json object (strings or {"content": ...}).
  static ordered_json special_tokens_from_config(const ordered_json& config);

  // Renders the conversation; throws ferrum::InvalidRequest with the template's message on a
  // syntax error, a runtime error or raise_exception. Safe to call from several threads.
  std::string render(const ChatRequest& request) const;
  // The syntax error of template `name` (see select()), or nullptr when it parsed.
  const std::string* syntax_error(const std::string& name) const;

  // The template transformers would pick: "tool_use" when tools are given and it exists,
  // else "default".
  const std::string& select(bool has_tools) const;
  const ordered_json& special_tokens() const { return special_tokens_; }
  // The source of template `name` (see select()).
  const std::string& source(const std::string& name) const { return sources_.at(name); }

  // Pins strftime_now to a moment (tests); by default it reads the clock.
  // Configuration; call before sharing the template between threads.
  void set_fixed_time(std::time_t t) { fixed_time_ = t; }
  void set_limits(const jinja::RenderLimits& limits) { limits_ = limits; }

 private:
  const jinja::Template& compiled(const std::string& name) const;

  std::map<std::string, std::string> sources_;
  std::map<std::string, std::shared_ptr<const jinja::Template>> compiled_;
  std::map<std::string, std::string> parse_errors_;
  ordered_json special_tokens_;
  std::optional<std::time_t> fixed_time_;
  jinja::RenderLimits limits_;
};

// OpenAI clients send tool_calls[].function.arguments as a JSON string; templates expect a
// mapping (as vLLM passes it). Parses such strings in place; leaves invalid JSON as a string.
void normalize_tool_call_arguments(ordered_json& messages);

}  // namespace ferrum::chat

namespace ferrum::chat {

// Builds a request from files as the `ferrum chat-template` command takes them: MESSAGES is a
// JSON array of messages, TOOLS (optional, "" for none) a JSON array of tool definitions,
// kwargs_json (optional) a JSON object of extra template variables. Throws ferrum::Error with
// the file name on unreadable or invalid input.
ChatRequest load_chat_request(const std::string& messages_path, const std::string& tools_path,
                              bool add_generation_prompt, const std::string& kwargs_json);

}  // namespace ferrum::chat
