// ferrum quantize: writes a Hugging Face model folder as a GGUF v3 file.
//   ferrum quantize IN OUT TYPE [--dummy]     (TYPE: F32, F16, BF16, Q8_0, Q4_0)
// Architecture keys, tokenizer and chat template go into the metadata as llama.cpp's converter
// writes them; norms and biases stay F32. A progress bar shows on a terminal.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "io/gguf_writer.h"
#include "models/gguf_model.h"

namespace ferrum::cli {
namespace {

struct QuantizeArgs {
  std::string in, out, type;
  bool dummy = false;
};

GgmlType parse_type(const std::string& s) {
  static const std::map<std::string, GgmlType> m = {{"F32", GgmlType::F32},   {"F16", GgmlType::F16},
                                                    {"BF16", GgmlType::BF16}, {"Q8_0", GgmlType::Q8_0},
                                                    {"Q4_0", GgmlType::Q4_0}};
  const auto it = m.find(s);
  if (it != m.end()) return it->second;
  if (s == "Q4_K_M" || s == "Q5_K_M" || s == "Q6_K")
    fail("quantize: {} is not implemented yet (F32, F16, BF16, Q8_0 and Q4_0 are); ferrum reads {} files", s, s);
  fail("quantize: unknown type '{}' (F32, F16, BF16, Q8_0 or Q4_0)", s);
}

int run_quantize(const QuantizeArgs& a) {
  const GgmlType type = parse_type(a.type);
  if (is_gguf_path(a.in)) fail("quantize: IN must be a Hugging Face model folder (re-quantizing GGUF files is not implemented yet)");
  const bool tty = isatty(STDERR_FILENO);
  const auto t0 = std::chrono::steady_clock::now();
  convert_to_gguf(a.in, a.out, type, [&](size_t done, size_t total) {
    if (!tty) return;
    const int width = 40, filled = static_cast<int>(width * done / total);
    std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu tensors", filled, "========================================",
                 width - filled, "", done, total);
    if (done == total) std::fprintf(stderr, "\n");
  }, a.dummy);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "wrote %s (%s) in %.1f s\n", a.out.c_str(), a.type.c_str(), secs);
  return 0;
}

}  // namespace

void register_quantize(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* sub = add_command(app, "quantize", "Write a Hugging Face model folder as a GGUF file",
                              [args] { return run_quantize(*args); });
  sub->add_option("IN", args->in, "Hugging Face model folder")->required();
  sub->add_option("OUT", args->out, "GGUF file to write")->required();
  sub->add_option("TYPE", args->type, "F32, F16, BF16, Q8_0 or Q4_0")->required();
  sub->add_flag("--dummy", args->dummy,
                "Random weights for IN's config.json instead of its safetensors (benchmarks of a shape)");
}

}  // namespace ferrum::cli
