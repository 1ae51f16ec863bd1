// ferrum perplexity -m MODEL_DIR --file TEXT [--ctx N] [-t THREADS] [--json]
// Perplexity of a text file with a fixed context window, as llama.cpp's perplexity tool reports
// it (non-overlapping windows, second half of each scored; see models/perplexity.h). Progress
// and the final "Final estimate: PPL = X +/- Y" line go to stdout.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "io/hf_hub.h"
#include "core/file.h"
#include "models/gguf_model.h"
#include "core/json.h"
#include "models/model.h"
#include "models/perplexity.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::cli {
namespace {

struct PerplexityArgs {
  std::string model, file;
  int ctx = 512, threads = 0;
  std::string device = "cpu";
  std::string quantization;
  bool json = false;
};

// The BOS that the tokenizer puts in front of a text, if it adds one (Llama-style
// post-processors); llama.cpp then starts every window with it.
std::optional<int32_t> added_bos(const Tokenizer& tok, const std::vector<int32_t>& with_special,
                                 const std::string& text) {
  const auto plain = tok.encode(text, false);
  if (with_special.size() > plain.size() && !with_special.empty() && tok.is_special(with_special[0]) &&
      (plain.empty() || plain[0] != with_special[0]))
    return with_special[0];
  return std::nullopt;
}

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

int run_perplexity(const PerplexityArgs& a) {
  const std::string text = read_file(a.file);
  const std::string path = hub::resolve_model(a.model);  // a folder, a .gguf, or a hub reference
  const auto tokenizer = load_tokenizer(path);
  auto model = load_model(path, a.threads, a.device, a.quantization);

  if (!a.json) std::printf("perplexity: tokenizing the input ..\n");
  auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> tokens = tokenizer->encode(text, true);
  if (!a.json) std::printf("perplexity: tokenization took %.3f ms\n", elapsed_ms(t0));

  PerplexityOptions opt;
  opt.ctx = a.ctx;
  opt.bos_id = added_bos(*tokenizer, tokens, text);
  if (!a.json) {
    // The header waits for the first window, so that a rejected --ctx prints only the error.
    opt.on_window = [&a, n = tokens.size()](int32_t w, double ppl) {
      if (w == 0) std::printf("perplexity: calculating perplexity over %zu chunks, n_ctx=%d\n", n / a.ctx, a.ctx);
      std::printf("[%d]%.4f,", w + 1, ppl);
      std::fflush(stdout);
    };
  }
  t0 = std::chrono::steady_clock::now();
  const PerplexityResult r = compute_perplexity(*model, tokens, opt);
  const double ms = elapsed_ms(t0);
  if (a.json) {
    ordered_json j = {{"ppl", r.ppl},           {"ppl_stderr", r.ppl_stderr},   {"mean_nll", r.mean_nll},
                      {"ctx", r.ctx},           {"num_windows", r.num_windows}, {"num_scored", r.num_scored},
                      {"num_tokens", tokens.size()}, {"seconds", ms / 1000.0}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("\n");
  std::printf("perplexity: %.2f seconds for %d chunks (%.1f tokens/s)\n", ms / 1000.0, r.num_windows,
              r.num_windows * static_cast<double>(r.ctx) / (ms / 1000.0));
  std::printf("Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
  return 0;
}

}  // namespace

void register_perplexity(CLI::App& app) {
  auto a = std::make_shared<PerplexityArgs>();
  auto* cmd = add_command(app, "perplexity", "Perplexity of a text file with a fixed context window (as llama.cpp)",
                          [a] { return run_perplexity(*a); });
  cmd->add_option("-m,--model", a->model, "Model folder (config.json, safetensors, tokenizer.json)")->required();
  cmd->add_option("-f,--file", a->file, "Text file to score")->required();
  cmd->add_option("-c,--ctx", a->ctx, "Context window in tokens; each window's second half is scored")
      ->check(CLI::Range(4, 1 << 20));
  cmd->add_option("-t,--threads", a->threads, "CPU threads (default: all cores)");
  cmd->add_option("--quantization", a->quantization, "Quantize dense weights at load: fp8 (E4M3, per-channel scales; a GPU runs it)")->check(CLI::IsMember({"none", "fp8"}));
  cmd->add_option("--device", a->device, "Where the model runs: cpu, cuda or cuda:N")->envname("FERRUM_DEVICE")->capture_default_str();
  cmd->add_flag("--json", a->json, "Print one JSON object with the result instead of llama.cpp-style lines");
}

}  // namespace ferrum::cli
