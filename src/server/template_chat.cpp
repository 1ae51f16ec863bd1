#include "server/template_chat.h"

#include "core/error.h"

namespace ferrum::server {

namespace {

ChatPiece to_piece(const chat::ParsedDelta& d) {
  ChatPiece p{d.content, d.reasoning, nullptr};
  if (!d.tool_calls.empty()) {
    p.tool_calls = json::array();
    for (auto& c : d.tool_calls)
      p.tool_calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  }
  return p;
}

class ChatParserAdapter : public ChatOutputParser {
 public:
  explicit ChatParserAdapter(chat::ParserOptions o) : parser_(std::move(o)) {}
  ChatPiece feed(std::string_view text) override { return to_piece(parser_.feed(text)); }
  ChatPiece finish() override { return to_piece(parser_.finish()); }

 private:
  chat::OutputParser parser_;
};

}  // namespace

TemplateChatFormatter::TemplateChatFormatter(chat::ChatTemplate tmpl, bool reasoning, chat::ToolCallFormat tools)
    : template_(std::move(tmpl)), reasoning_(reasoning), tools_(tools) {}

std::string TemplateChatFormatter::render(const ordered_json& messages, const ordered_json& tools,
                                          bool add_generation_prompt, bool continue_final_message,
                                          const ordered_json& template_kwargs) const {
  chat::ChatRequest req;
  req.messages = messages;
  if (tools.is_array()) req.tools = tools;
  req.add_generation_prompt = add_generation_prompt;
  req.kwargs = template_kwargs;
  std::string final_content;
  if (continue_final_message) {
    // Render the last assistant message open-ended: cut the prompt right after its content.
    const auto& last = req.messages.back();
    auto content = last.find("content");
    if (content != last.end() && content->is_string()) final_content = content->get<std::string>();
  }
  std::string text = template_.render(req);
  if (continue_final_message && !final_content.empty()) {
    size_t at = text.rfind(final_content);
    if (at == std::string::npos) throw InvalidRequest("continue_final_message: the template does not render the final message verbatim");
    text.resize(at + final_content.size());
  }
  return text;
}

std::unique_ptr<ChatOutputParser> TemplateChatFormatter::make_parser(bool tools_enabled, const ordered_json& template_kwargs,
                                                                     const std::string& prompt) const {
  chat::ParserOptions o;
  o.reasoning = reasoning_;
  size_t end = prompt.find_last_not_of(" \t\r\n");
  std::string trimmed = prompt.substr(0, end == std::string::npos ? 0 : end + 1);
  o.starts_in_reasoning = reasoning_ && trimmed.size() >= o.think_open.size() &&
                          trimmed.compare(trimmed.size() - o.think_open.size(), o.think_open.size(), o.think_open) == 0;
  o.tools = tools_enabled ? tools_ : chat::ToolCallFormat::None;
  if (!o.reasoning && o.tools == chat::ToolCallFormat::None) return std::make_unique<PlainOutputParser>();
  return std::make_unique<ChatParserAdapter>(std::move(o));
}

std::optional<structured::ToolCallSyntax> TemplateChatFormatter::tool_call_syntax() const {
  if (tools_ == chat::ToolCallFormat::Hermes) return structured::ToolCallSyntax::Hermes;
  if (tools_ == chat::ToolCallFormat::Llama3Json) return structured::ToolCallSyntax::Llama3Json;
  return std::nullopt;
}

// A reasoning model reasons first unless the prompt already closed its think block (Qwen3's
// enable_thinking false renders "<think>\n\n</think>\n\n" into the prompt).
std::string TemplateChatFormatter::structured_output_after(const std::string& prompt) const {
  if (!reasoning_) return {};
  const chat::ParserOptions o;
  const size_t end = prompt.find_last_not_of(" \t\r\n");
  const std::string trimmed = prompt.substr(0, end == std::string::npos ? 0 : end + 1);
  if (trimmed.size() >= o.think_close.size() && trimmed.compare(trimmed.size() - o.think_close.size(), o.think_close.size(), o.think_close) == 0)
    return {};
  return o.think_close;
}

}  // namespace ferrum::server
