// ferrum tokenize: prints the token ids of a text as the model's HF tokenizer encodes it.
//   ferrum tokenize -m MODEL_DIR (--text T | --file F) [--no-special] [--json]
// Without --json the ids go on one line separated by spaces; with --json as a JSON array.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "io/hf_hub.h"
#include "core/file.h"
#include "models/gguf_model.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::cli {
namespace {

struct TokenizeArgs {
  std::string model, text, file;
  bool no_special = false, json = false;
};

std::string format_ids(const std::vector<int32_t>& ids, bool as_json) {
  std::string out = as_json ? "[" : "";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += as_json ? ", " : " ";
    out += std::to_string(ids[i]);
  }
  if (as_json) out += "]";
  return out;
}

int run_tokenize(const TokenizeArgs& a) {
  const std::string text = a.file.empty() ? a.text : read_file(a.file);
  const auto tokenizer = load_tokenizer(hub::resolve_model(a.model));
  const auto ids = tokenizer->encode(text, !a.no_special);
  const std::string line = format_ids(ids, a.json) + "\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
  return 0;
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  auto* cmd = add_command(app, "tokenize", "Print the token ids of a text", [a] { return run_tokenize(*a); });
  cmd->add_option("-m,--model", a->model, "Model folder (tokenizer.json, tokenizer_config.json)")->required();
  auto* text = cmd->add_option("--text", a->text, "Text to tokenize");
  auto* file = cmd->add_option("--file", a->file, "File whose bytes are tokenized");
  text->excludes(file);
  cmd->add_flag("--no-special", a->no_special, "Do not add special tokens (BOS...): add_special_tokens=False");
  cmd->add_flag("--json", a->json, "Print a JSON array of ids");
  cmd->callback([text, file] {
    if (text->count() == 0 && file->count() == 0) throw CLI::RequiredError("--text or --file");
  });
}

}  // namespace ferrum::cli
