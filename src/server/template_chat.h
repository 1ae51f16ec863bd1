// ChatFormatter over the chat component: its Jinja ChatTemplate renders prompts and its
// OutputParser splits reasoning and tool calls out of what the model writes.
#pragma once
#include <memory>
#include <string>

#include "chat/chat_template.h"
#include "chat/output_parser.h"
#include "server/chat_formatter.h"

namespace ferrum::server {

class TemplateChatFormatter : public ChatFormatter {
 public:
  // reasoning: the model writes <think> blocks; tools: how it writes tool calls.
  TemplateChatFormatter(chat::ChatTemplate tmpl, bool reasoning, chat::ToolCallFormat tools);

  std::string render(const ordered_json& messages, const ordered_json& tools, bool add_generation_prompt,
                     bool continue_final_message, const ordered_json& template_kwargs) const override;
  bool supports_tools() const override { return tools_ != chat::ToolCallFormat::None; }
  std::optional<structured::ToolCallSyntax> tool_call_syntax() const override;
  std::string structured_output_after(const std::string& prompt) const override;
  std::unique_ptr<ChatOutputParser> make_parser(bool tools_enabled, const ordered_json& template_kwargs,
                                                const std::string& prompt) const override;

 private:
  chat::ChatTemplate template_;  // compiled when built; render is safe from several threads
  bool reasoning_;
  chat::ToolCallFormat tools_;
};

}  // namespace ferrum::server
