// ChatFormatter over the chat component's Jinja ChatTemplate, with TaggedOutputParser for
// reasoning and tool calls.
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include "chat/chat_template.h"
#include "server/chat_formatter.h"

namespace ferrum::server {

class TemplateChatFormatter : public ChatFormatter {
 public:
  // reasoning / tool_tags: the vocabulary has <think> / <tool_call> tokens.
  TemplateChatFormatter(chat::ChatTemplate tmpl, bool reasoning, bool tool_tags);

  std::string render(const json& messages, const json& tools, bool add_generation_prompt,
                     bool continue_final_message, const json& template_kwargs) const override;
  std::unique_ptr<ChatOutputParser> make_parser(bool tools_enabled, const json& template_kwargs,
                                                const std::string& prompt) const override;

 private:
  mutable std::mutex mutex_;  // ChatTemplate compiles lazily and is not thread-safe
  chat::ChatTemplate template_;
  bool reasoning_, tool_tags_;
};

}  // namespace ferrum::server
