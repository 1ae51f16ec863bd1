// ChatFormatter over the chat component: its Jinja ChatTemplate renders prompts and its
// OutputParser splits reasoning and tool calls out of what the model writes.
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include "chat/chat_template.h"
#include "chat/output_parser.h"
#include "server/chat_formatter.h"

namespace ferrum::server {

class TemplateChatFormatter : public ChatFormatter {
 public:
  // reasoning: the model writes <think> blocks; tools: how it writes tool calls.
  TemplateChatFormatter(chat::ChatTemplate tmpl, bool reasoning, chat::ToolCallFormat tools);

  std::string render(const json& messages, const json& tools, bool add_generation_prompt,
                     bool continue_final_message, const json& template_kwargs) const override;
  bool supports_tools() const override { return tools_ != chat::ToolCallFormat::None; }
  std::unique_ptr<ChatOutputParser> make_parser(bool tools_enabled, const json& template_kwargs,
                                                const std::string& prompt) const override;

 private:
  mutable std::mutex mutex_;  // ChatTemplate compiles lazily and is not thread-safe
  chat::ChatTemplate template_;
  bool reasoning_;
  chat::ToolCallFormat tools_;
};

}  // namespace ferrum::server
