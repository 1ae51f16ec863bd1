// ferrum chat-template -m MODEL_DIR --messages FILE.json [--tools FILE.json]
//                      [--no-generation-prompt] [--kwargs JSON] [--chat-template FILE]
// Prints the prompt the model's chat template makes of a conversation, exactly (no newline
// added), as transformers' apply_chat_template(tokenize=False) would.
#include <cstdio>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "core/error.h"

namespace ferrum::cli {
namespace {

struct ChatTemplateArgs {
  std::string model, messages, tools, kwargs, template_file;
  bool no_generation_prompt = false;
};

int run_chat_template(const ChatTemplateArgs& a) {
  chat::ChatRequest req = chat::load_chat_request(a.messages, a.tools, !a.no_generation_prompt, a.kwargs);
  chat::ChatTemplate tmpl = a.template_file.empty() ? chat::ChatTemplate::from_model_dir(a.model)
                                                    : chat::ChatTemplate::from_file(a.template_file, a.model);
  std::string prompt = tmpl.render(req);
  if (std::fwrite(prompt.data(), 1, prompt.size(), stdout) != prompt.size()) fail("cannot write to stdout");
  std::fflush(stdout);
  return 0;
}

}  // namespace

void register_chat_template(CLI::App& app) {
  auto a = std::make_shared<ChatTemplateArgs>();
  auto* cmd = add_command(app, "chat-template", "Render a conversation with the model's chat template",
                          [a] { return run_chat_template(*a); });
  cmd->add_option("-m,--model", a->model, "Model directory (tokenizer_config.json, chat_template.jinja ...)")->required();
  cmd->add_option("--messages", a->messages, "JSON file: array of OpenAI-style messages")->required();
  cmd->add_option("--tools", a->tools, "JSON file: array of OpenAI tool definitions");
  cmd->add_flag("--no-generation-prompt", a->no_generation_prompt, "Do not add the assistant generation prompt");
  cmd->add_option("--kwargs", a->kwargs, "JSON object of extra template variables, e.g. '{\"enable_thinking\": false}'");
  cmd->add_option("--chat-template", a->template_file, "Use this Jinja template file instead of the model's");
}

}  // namespace ferrum::cli
