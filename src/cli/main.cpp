// ferrum: the command-line front of the engine library. Subcommands live in cmd_*.cpp.
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "core/error.h"

namespace ferrum::cli {
namespace {
std::map<CLI::App*, Action>& actions() {
  static std::map<CLI::App*, Action> a;
  return a;
}
}  // namespace

CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& help, Action action) {
  CLI::App* sub = app.add_subcommand(name, help);
  actions()[sub] = std::move(action);
  return sub;
}

}  // namespace ferrum::cli

int main(int argc, char** argv) {
  using namespace ferrum::cli;
  install_crash_handler();
  CLI::App app{"ferrum: a fast LLM inference engine"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ferrum 0.1.0");
  register_generate(app);
  register_tokenize(app);
  register_chat_template(app);
  register_bench(app);
  register_perplexity(app);
  register_serve(app);
  register_run(app);
  register_pull(app);
  register_list(app);
  register_quantize(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (CLI::App* sub : app.get_subcommands()) {
      auto it = actions().find(sub);
      if (it != actions().end()) return it->second();
    }
    std::fprintf(stderr, "error: no command given\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
