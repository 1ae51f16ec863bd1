// ferrum run [MODEL]: chat with a model in the terminal. Streams replies, keeps the history,
// takes multi-line input (end a line with '\' to continue it, or wrap a block in """), and
// leaves on /bye or end of input. A prompt piped on stdin is answered once.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "cli/default_model.h"
#include "core/error.h"
#include "core/json.h"
#include "server/model_loader.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::cli {
namespace {

struct RunArgs {
  std::string model, system, chat_template, kv_cache_memory = "auto", device = "cpu", quantization;
  std::string kv_cache_dtype = "auto";
  float temperature = 0.7f, top_p = 0.95f;
  int max_tokens = 0, threads = 0, max_model_len = 0;
  int64_t seed = -1;
};

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }

// Reads one user turn; nullopt at end of input.
std::optional<std::string> read_turn(bool interactive) {
  std::string text, line;
  bool in_block = false;
  for (;;) {
    if (interactive) std::fputs(text.empty() && !in_block ? ">>> " : "... ", stdout), std::fflush(stdout);
    if (!std::getline(std::cin, line)) {
      if (text.empty()) return std::nullopt;
      return text;
    }
    if (line.rfind("\"\"\"", 0) == 0 && !in_block) {
      in_block = true;
      line = line.substr(3);
      if (line.empty()) continue;
    }
    if (in_block) {
      size_t end = line.find("\"\"\"");
      if (end != std::string::npos) {
        text += line.substr(0, end);
        return text;
      }
      text += line + "\n";
      continue;
    }
    if (!line.empty() && line.back() == '\\') {
      text += line.substr(0, line.size() - 1) + "\n";
      continue;
    }
    return text + line;
  }
}

// Generates the assistant's reply to `messages`, streaming it to stdout.
std::string reply(server::ServingContext& ctx, const json& messages, const RunArgs& a, bool color) {
  std::string prompt = ctx.chat->render(messages, nullptr, true, false, json::object());
  std::vector<int32_t> ids = ctx.tokenizer->encode(prompt, false);
  if (static_cast<int32_t>(ids.size()) >= ctx.max_model_len)
    fail("the conversation ({} tokens) no longer fits the context of {} tokens; /clear starts afresh", ids.size(), ctx.max_model_len);
  SamplingParams p;
  p.temperature = a.temperature;
  p.top_p = a.top_p;
  int32_t room = ctx.max_model_len - static_cast<int32_t>(ids.size());
  p.max_tokens = a.max_tokens > 0 ? std::min(a.max_tokens, room) : room;
  if (a.seed >= 0) p.seed = static_cast<uint64_t>(a.seed);
  auto parser = ctx.chat->make_parser(false, json::object(), prompt);
  auto stream = ctx.engine->submit(std::move(ids), p);
  std::string content;
  bool in_reasoning = false;
  auto show = [&](const server::ChatPiece& piece) {
    if (!piece.reasoning.empty()) {
      if (!in_reasoning && color) std::fputs("\x1b[2m", stdout);
      in_reasoning = true;
      std::fputs(piece.reasoning.c_str(), stdout);
    }
    if (!piece.content.empty()) {
      if (in_reasoning) {
        if (color) std::fputs("\x1b[0m", stdout);
        std::fputs("\n", stdout);
        in_reasoning = false;
      }
      std::fputs(piece.content.c_str(), stdout);
      content += piece.content;
    }
    std::fflush(stdout);
  };
  std::string error;
  while (auto out = stream->next()) {
    if (g_interrupted.exchange(false)) stream->abort();
    for (auto& d : out->deltas) {
      show(parser->feed(d.text));
      if (d.finish_reason == FinishReason::Error) error = d.error;
    }
  }
  show(parser->finish());
  if (in_reasoning && color) std::fputs("\x1b[0m", stdout);
  std::fputs("\n", stdout);
  std::fflush(stdout);
  if (!error.empty()) fail("generation failed: {}", error);
  return content;
}

int run_chat(RunArgs a) {
  if (a.model.empty()) a.model = default_model_dir();  // the bundled ferrum-tiny
  server::ModelLoadOptions lo;
  lo.model = a.model;
  lo.chat_template_file = a.chat_template;
  lo.threads = a.threads;
  lo.device = a.device;
  lo.quantization = a.quantization;
  lo.kv_cache_dtype = a.kv_cache_dtype;
  lo.engine.max_model_len = a.max_model_len;
  lo.engine.max_num_seqs = 1;
  lo.kv_cache_auto = a.kv_cache_memory == "auto";
  if (!lo.kv_cache_auto) lo.engine.kv_cache_bytes = server::parse_byte_size(a.kv_cache_memory);
  auto ctx = server::load_serving_context(lo);
  if (!ctx->chat) fail("{} has no chat template; pass one with --chat-template, or use `ferrum generate`", a.model);

  bool interactive = isatty(STDIN_FILENO);
  bool color = isatty(STDOUT_FILENO);
  json history = json::array();
  if (!a.system.empty()) history.push_back({{"role", "system"}, {"content", a.system}});

  if (!interactive) {
    // Piped: the whole input is one prompt, answered once.
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    while (!input.empty() && (input.back() == '\n' || input.back() == '\r')) input.pop_back();
    if (input.empty()) fail("no prompt on stdin");
    history.push_back({{"role", "user"}, {"content", input}});
    reply(*ctx, history, a, color);
    ctx->engine->shutdown();
    return 0;
  }

  std::signal(SIGINT, on_sigint);
  std::fprintf(stderr, "Chatting with %s. /bye leaves, /clear forgets the conversation; end a line with \\ or "
                       "wrap text in \"\"\" for several lines; Ctrl+C stops a reply.\n", a.model.c_str());
  for (;;) {
    g_interrupted = false;
    auto turn = read_turn(true);
    if (!turn) break;
    std::string text = *turn;
    if (text == "/bye" || text == "/exit" || text == "/quit") break;
    if (text == "/clear") {
      history.erase(history.begin() + (a.system.empty() ? 0 : 1), history.end());
      std::fputs("(conversation cleared)\n", stdout);
      continue;
    }
    if (text.find_first_not_of(" \t\n") == std::string::npos) continue;
    history.push_back({{"role", "user"}, {"content", text}});
    try {
      history.push_back({{"role", "assistant"}, {"content", reply(*ctx, history, a, color)}});
    } catch (const Error& e) {
      history.erase(history.end() - 1);
      std::fprintf(stderr, "error: %s\n", e.what());
    }
  }
  std::fputs("\n", stdout);
  ctx->engine->shutdown();
  return 0;
}

}  // namespace

void register_run(CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  auto* cmd = add_command(app, "run", "Chat with a model in the terminal", [a] { return run_chat(*a); });
  cmd->add_option("model", a->model, "Model folder, or Hugging Face repo id ORG/NAME[:REVISION] (default: the bundled ferrum-tiny)")->envname("FERRUM_MODEL");
  cmd->add_option("--system", a->system, "System prompt");
  cmd->add_option("--temp", a->temperature, "Temperature (0 = greedy)")->check(CLI::Range(0.0, 2.0))->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "Top-p")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("-n,--max-tokens", a->max_tokens, "Longest reply in tokens (default: the rest of the context)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", a->seed, "Sampling seed");
  cmd->add_option("--chat-template", a->chat_template, "Jinja chat template file")->envname("FERRUM_CHAT_TEMPLATE");
  cmd->add_option("--threads", a->threads, "CPU threads")->envname("FERRUM_THREADS")->check(CLI::NonNegativeNumber);
  cmd->add_option("--quantization", a->quantization, "Quantize dense weights at load: fp8 (E4M3, per-channel scales; a GPU runs it)")->check(CLI::IsMember({"none", "fp8"}));
  add_kv_cache_dtype_option(cmd, a->kv_cache_dtype);
  cmd->add_option("--device", a->device, "Where the model runs: cpu, cuda or cuda:N")->envname("FERRUM_DEVICE")->capture_default_str();
  cmd->add_option("--max-model-len", a->max_model_len, "Context length")->envname("FERRUM_MAX_MODEL_LEN")->check(CLI::NonNegativeNumber);
  cmd->add_option("--kv-cache-memory", a->kv_cache_memory, "Memory for the KV cache; auto: 512MiB on the CPU, most of the free GPU memory on a GPU")->envname("FERRUM_KV_CACHE_MEMORY")->capture_default_str();
}

}  // namespace ferrum::cli
