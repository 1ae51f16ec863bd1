// ferrum generate -m MODEL_DIR -p PROMPT -n N [--temp T] [--seed S] [--json]
// Streams the continuation to stdout through the engine; logs go to stderr.
#include <cstdio>

#include "cli/commands.h"
#include "cli/spec_args.h"
#include "engine/spec_setup.h"
#include "models/gguf_model.h"
#include "core/error.h"
#include "io/hf_hub.h"
#include "core/json.h"
#include "engine/engine.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::cli {
namespace {

struct GenerateArgs {
  std::string model, prompt;
  int n = 64;
  float temp = 0.8f, top_p = 1.0f, min_p = 0.0f, repetition_penalty = 1.0f;
  int top_k = 0, threads = 0;
  std::string device = "cpu";
  std::string quantization;
  int64_t seed = -1;
  bool json = false, ignore_eos = false, no_special = false;
  SpecArgs spec;
};

int run_generate(const GenerateArgs& a) {
  const std::string path = hub::resolve_model(a.model);  // a folder, a .gguf, or a hub reference
  auto tokenizer = std::shared_ptr<const Tokenizer>(load_tokenizer(path));
  std::shared_ptr<Model> model = load_model(path, a.threads, a.device, a.quantization);
  std::vector<int32_t> prompt_ids = tokenizer->encode(a.prompt, !a.no_special);
  if (prompt_ids.empty()) fail("the prompt is empty after tokenization; give some text with -p");

  SamplingParams sp;
  sp.max_tokens = a.n;
  sp.temperature = a.temp;
  sp.top_k = a.top_k;
  sp.top_p = a.top_p;
  sp.min_p = a.min_p;
  sp.repetition_penalty = a.repetition_penalty;
  sp.ignore_eos = a.ignore_eos;
  if (a.seed >= 0) sp.seed = static_cast<uint64_t>(a.seed);

  EngineOptions eo;
  const int64_t need = static_cast<int64_t>(prompt_ids.size()) + a.n;
  eo.num_kv_blocks = static_cast<int32_t>((need + eo.block_size - 1) / eo.block_size + 1);
  eo.max_num_seqs = 1;
  eo.speculative = a.spec.options();
  if (!a.spec.draft.empty()) eo.speculative.draft = load_draft_model(a.spec.draft, *tokenizer, a.threads, a.device);
  auto engine = Engine::create(model, tokenizer, eo);
  auto stream = engine->submit(prompt_ids, sp);

  std::vector<int32_t> ids;
  std::string text, error;
  while (auto out = stream->next()) {
    for (const auto& d : out->deltas) {
      ids.insert(ids.end(), d.token_ids.begin(), d.token_ids.end());
      text += d.text;
      if (!a.json && !d.text.empty()) {
        std::fwrite(d.text.data(), 1, d.text.size(), stdout);
        std::fflush(stdout);
      }
      if (d.finish_reason == FinishReason::Error) error = d.error;
    }
  }
  engine->shutdown();
  if (!error.empty()) fail("generation failed: {}", error);
  if (a.json) {
    ordered_json j = {{"prompt_ids", prompt_ids}, {"ids", ids}, {"text", text}};
    std::printf("%s\n", j.dump(-1, ' ', false, ordered_json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
  }
  return 0;
}

}  // namespace

void register_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  auto* cmd = add_command(app, "generate", "Generate a continuation of a prompt", [a] { return run_generate(*a); });
  cmd->add_option("-m,--model", a->model, "Model folder (config.json, safetensors, tokenizer.json)")->required();
  cmd->add_option("-p,--prompt", a->prompt, "Prompt text")->required();
  cmd->add_option("-n,--max-tokens", a->n, "Tokens to generate")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--temp", a->temp, "Temperature (0 = greedy)")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", a->top_k, "Top-k (0 = off)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", a->top_p, "Top-p")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-p", a->min_p, "Min-p")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--repeat-penalty", a->repetition_penalty, "Repetition penalty (1 = off)");
  cmd->add_option("--seed", a->seed, "Sampling seed (default: random)");
  cmd->add_option("-t,--threads", a->threads, "CPU threads (default: all cores)");
  cmd->add_option("--quantization", a->quantization, "Quantize dense weights at load: fp8 (E4M3, per-channel scales; a GPU runs it)")->check(CLI::IsMember({"none", "fp8"}));
  cmd->add_option("--device", a->device, "Where the model runs: cpu, cuda or cuda:N")->envname("FERRUM_DEVICE")->capture_default_str();
  cmd->add_flag("--ignore-eos", a->ignore_eos, "Keep generating past the end-of-sequence token");
  cmd->add_flag("--no-special", a->no_special, "Do not add special tokens (BOS) to the prompt");
  add_spec_options(cmd, a->spec);
  cmd->add_flag("--json", a->json,
                "Print one JSON object {prompt_ids, ids, text} instead of streaming text");
}

}  // namespace ferrum::cli
