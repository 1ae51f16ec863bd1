#include "server/template_chat.h"

#include "core/error.h"
#include "server/chat_output_parser.h"

namespace ferrum::server {

TemplateChatFormatter::TemplateChatFormatter(chat::ChatTemplate tmpl, bool reasoning, bool tool_tags)
    : template_(std::move(tmpl)), reasoning_(reasoning), tool_tags_(tool_tags) {}

std::string TemplateChatFormatter::render(const json& messages, const json& tools, bool add_generation_prompt,
                                          bool continue_final_message, const json& template_kwargs) const {
  chat::ChatRequest req;
  req.messages = ordered_json::parse(messages.dump());
  if (tools.is_array()) req.tools = ordered_json::parse(tools.dump());
  req.add_generation_prompt = add_generation_prompt;
  req.kwargs = ordered_json::parse(template_kwargs.dump());
  std::string final_content;
  if (continue_final_message) {
    // Render the last assistant message open-ended: cut the prompt right after its content.
    final_content = req.messages.back().value("content", std::string());
  }
  std::string text;
  {
    std::lock_guard lock(mutex_);
    text = template_.render(req);
  }
  if (continue_final_message && !final_content.empty()) {
    size_t at = text.rfind(final_content);
    if (at == std::string::npos) throw InvalidRequest("continue_final_message: the template does not render the final message verbatim");
    text.resize(at + final_content.size());
  }
  return text;
}

std::unique_ptr<ChatOutputParser> TemplateChatFormatter::make_parser(bool tools_enabled, const json& template_kwargs,
                                                                     const std::string& prompt) const {
  TagParserOptions o;
  o.reasoning = reasoning_;
  size_t end = prompt.find_last_not_of(" \t\r\n");
  std::string trimmed = prompt.substr(0, end == std::string::npos ? 0 : end + 1);
  o.starts_in_reasoning = reasoning_ && trimmed.size() >= 7 && trimmed.compare(trimmed.size() - 7, 7, "<think>") == 0;
  o.tools = tools_enabled && tool_tags_;
  if (!o.reasoning && !o.tools) return std::make_unique<PlainOutputParser>();
  return std::make_unique<TaggedOutputParser>(o);
}

}  // namespace ferrum::server
