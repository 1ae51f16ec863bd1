// From config.json `architectures` to the model class and its options.
#include <map>

#include "core/log.h"
#include "models/decoder_model.h"
#include "models/gguf_model.h"
#include "models/moe_decoder_model.h"

namespace ferrum {
namespace {

using ModelFactory = std::unique_ptr<Model> (*)(const ModelConfig&, const DecoderOptions&, WeightStore,
                                                 std::unique_ptr<Backend>);

struct Architecture {
  DecoderOptions options;
  ModelFactory make = make_decoder_model;
};

const std::map<std::string, Architecture>& decoder_architectures() {
  static const std::map<std::string, Architecture> m = {
      {"LlamaForCausalLM", {}},
      {"MistralForCausalLM", {}},
      {"Qwen2ForCausalLM", {{.qkv_bias = true}}},
      {"Qwen3ForCausalLM", {{.qk_norm = true}}},
      // q/k/v biases as config.json's qkv_bias says (true unless given).
      {"Qwen2MoeForCausalLM", {{}, make_moe_decoder_model}},
      {"Qwen3MoeForCausalLM", {{.qk_norm = true}, make_moe_decoder_model}},
  };
  return m;
}

}  // namespace

std::string architecture_of(const ModelConfig& c) {
  if (!c.architecture.empty()) return c.architecture;
  static const std::map<std::string, std::string> by_type = {
      {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"},
      {"qwen2", "Qwen2ForCausalLM"}, {"qwen3", "Qwen3ForCausalLM"},
      {"qwen2_moe", "Qwen2MoeForCausalLM"}, {"qwen3_moe", "Qwen3MoeForCausalLM"}};
  auto it = by_type.find(c.model_type);
  return it == by_type.end() ? "" : it->second;
}

namespace {

struct Resolved {
  ModelConfig config;
  DecoderOptions options;
  ModelFactory make;
};

Resolved resolve(ModelConfig config, const std::string& model_dir) {
  const std::string arch = architecture_of(config);
  auto it = decoder_architectures().find(arch);
  if (it == decoder_architectures().end()) {
    std::string known;
    for (const auto& [name, _] : decoder_architectures()) known += (known.empty() ? "" : ", ") + name;
    fail("{}: architecture '{}' is not supported (supported: {})", model_dir,
         arch.empty() ? config.model_type : arch, known);
  }
  DecoderOptions options = it->second.options;
  config.architecture = arch;
  options.qkv_bias = options.qkv_bias || config.attention_bias;
  config.qk_norm = options.qk_norm;
  config.attention_bias = options.qkv_bias;
  if (arch == "Qwen3MoeForCausalLM") config.moe.shared_expert_intermediate_size = 0;  // none in Qwen3-MoE
  return {config, options, it->second.make};
}

}  // namespace

namespace {

void apply_quantization(const std::string& quantization, const ModelConfig& config, DecoderOptions& options) {
  if (quantization.empty() || quantization == "none") return;
  if (quantization != "fp8") fail("--quantization '{}' is not supported (fp8 is)", quantization);
  if (!config.quantization.method.empty())
    fail("--quantization fp8: the model is already quantized ({})", config.quantization.method);
  options.online_fp8 = true;
}

}  // namespace

KvCacheDtype parse_kv_cache_dtype(const std::string& text) {
  if (text.empty() || text == "auto") return KvCacheDtype::Auto;
  if (text == "fp8" || text == "fp8_e4m3") return KvCacheDtype::Fp8E4M3;
  fail("--kv-cache-dtype '{}' is not supported (auto, fp8 or fp8_e4m3)", text);
}

std::unique_ptr<Model> load_model_dummy(const std::string& model_dir, const std::string& dtype, int num_threads,
                                        const std::string& device, const std::string& quantization,
                                        const std::string& kv_cache_dtype) {
  if (is_gguf_path(model_dir)) fail("--dummy takes a model folder (config.json), not a GGUF file");
  auto [config, options, make] = resolve(ModelConfig::from_dir(model_dir), model_dir);
  if (dtype == "bf16") options.dummy_weights = DType::BF16;
  else if (dtype == "f16") options.dummy_weights = DType::F16;
  else if (dtype == "f32") options.dummy_weights = DType::F32;
  else fail("dummy weight dtype '{}' is not one of bf16, f16, f32", dtype);
  apply_quantization(quantization, config, options);
  options.kv_cache_dtype = parse_kv_cache_dtype(kv_cache_dtype);
  return make(config, options, WeightStore(), make_backend(device, num_threads));
}

std::unique_ptr<Model> load_model(const std::string& model_dir, int num_threads, const std::string& device,
                                  const std::string& quantization, const std::string& kv_cache_dtype) {
  const KvCacheDtype kv = parse_kv_cache_dtype(kv_cache_dtype);  // before reading anything
  if (is_gguf_path(model_dir)) {
    std::shared_ptr<GgufFile> g = GgufFile::open(model_dir);
    auto [config, options, make] = resolve(config_from_gguf(*g), model_dir);
    apply_quantization(quantization, config, options);
    options.kv_cache_dtype = kv;
    WeightStore weights = weights_from_gguf(g, config);
    log::debug("loading {} ({} layers, hidden {}) from GGUF {}", config.architecture, config.num_hidden_layers,
               config.hidden_size, model_dir);
    return make(config, options, std::move(weights), make_backend(device, num_threads));
  }
  auto [config, options, make] = resolve(ModelConfig::from_dir(model_dir), model_dir);
  apply_quantization(quantization, config, options);
  options.kv_cache_dtype = kv;
  const std::string arch = config.architecture;
  WeightStore weights = WeightStore::open_dir(model_dir);
  log::debug("loading {} ({} layers, hidden {}) from {}", arch, config.num_hidden_layers, config.hidden_size, model_dir);
  return make(config, options, std::move(weights), make_backend(device, num_threads));
}

}  // namespace ferrum

namespace ferrum {

uint64_t Model::launch_sample(const ForwardBatch&, KvCache&, const SampleBatch&, const std::function<void()>&) {
  fail("this model samples on the host (forward_view); it cannot pick tokens itself");
}
void Model::collect_sample(uint64_t, SampleResult&) {
  fail("this model samples on the host (forward_view); it cannot pick tokens itself");
}

}  // namespace ferrum
