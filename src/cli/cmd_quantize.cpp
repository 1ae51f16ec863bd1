// ferrum quantize: writes a Hugging Face model folder or a GGUF file as a GGUF v3 file.
//   ferrum quantize IN OUT TYPE [--dummy [--random-blocks]]
//   (TYPE: F32, F16, BF16, Q8_0, Q4_0, Q4_K_M, Q5_K_M, Q6_K)
// Architecture keys, tokenizer and chat template go into the metadata as llama.cpp's converter
// writes them; each tensor's type follows llama-quantize's mix rules (io/gguf_mix.h). A
// progress bar shows on a terminal.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "io/gguf_mix.h"
#include "models/gguf_model.h"

namespace ferrum::cli {
namespace {

struct QuantizeArgs {
  std::string in, out, type;
  bool dummy = false, random_blocks = false;
};

int run_quantize(const QuantizeArgs& a) {
  const bool tty = isatty(STDERR_FILENO);
  const auto t0 = std::chrono::steady_clock::now();
  convert_to_gguf(a.in, a.out, a.type, [&](size_t done, size_t total) {
    if (!tty) return;
    const int width = 40, filled = static_cast<int>(width * done / total);
    std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu tensors", filled, "========================================",
                 width - filled, "", done, total);
    if (done == total) std::fprintf(stderr, "\n");
  }, a.dummy, a.random_blocks);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "wrote %s (%s) in %.1f s\n", a.out.c_str(), a.type.c_str(), secs);
  return 0;
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* sub = add_command(app, "quantize", "Write a Hugging Face model folder or a GGUF file as a GGUF file",
                              [args] { return run_quantize(*args); });
  sub->add_option("IN", args->in, "Hugging Face model folder or .gguf file")->required();
  sub->add_option("OUT", args->out, "GGUF file to write")->required();
  sub->add_option("TYPE", args->type, gguf_file_type_names())->required();
  CLI::Option* dummy = sub->add_flag(
      "--dummy", args->dummy, "Random weights for IN's config.json instead of its safetensors (benchmarks of a shape)");
  sub->add_flag("--random-blocks", args->random_blocks,
                "With --dummy: write each quantized tensor as random valid blocks of its type (values within "
                "about +-0.1) instead of quantizing random floats; seconds instead of minutes for a large shape")
      ->needs(dummy);
}

}  // namespace ferrum::cli
