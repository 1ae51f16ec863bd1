// Loads what serving needs (weights, tokenizer, chat template, engine) from a MODEL argument:
// a local folder or a Hugging Face repo id (from the cache, or downloaded). Shared by
// `ferrum serve` and `ferrum run`.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/openai_server.h"

namespace ferrum::server {

struct ModelLoadOptions {
  std::string model;                     // folder or ORG/NAME[:REVISION]
  std::vector<std::string> served_names;  // default: the MODEL argument
  std::string chat_template_file;        // overrides the model's template
  int threads = 0;                       // 0: all cores
  std::string device = "cpu";            // cpu, cuda or cuda:N
  // engine.kv_cache_bytes is ignored: 512 MiB on the CPU; on a GPU 90% of the memory free
  // after the weights and one step's activations, capped to what max_num_seqs sequences of
  // the full context can use.
  bool kv_cache_auto = false;
  std::string dummy;  // "bf16", "f16", "f32": random weights filled in place (benchmarks)
  std::string quantization;  // "" or "fp8": dense weights quantized at load
  std::string kv_cache_dtype = "auto";  // --kv-cache-dtype: auto, fp8 or fp8_e4m3 (models/model.h)
  EngineOptions engine;
  // Speculative decoding's draft model (engine.speculative holds the rest); with --dummy it
  // gets random weights too (the same ones when it is the target's own folder: a self-draft).
  std::string spec_draft;
};

// Fills limits left at 0 with the device's defaults, and logs them: 64 sequences and 2048
// tokens a step on the CPU; 256 and 8192 on a GPU (as vLLM), where batching is cheap.
void default_engine_limits(const std::string& device, int* max_num_seqs, int* max_num_batched_tokens);

// Throws ferrum::Error with a message for the user.
std::shared_ptr<ServingContext> load_serving_context(const ModelLoadOptions& options);

// "4GiB", "512MiB", "2G", "1000000" -> bytes; throws ferrum::Error.
size_t parse_byte_size(const std::string& text);

}  // namespace ferrum::server
