#include "io/model_config.h"

#include <cctype>
#include <cmath>
#include <limits>
#include <optional>
#include <type_traits>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/json_integer.h"
#include "core/json.h"
#include "core/log.h"

namespace ferrum {
namespace fs = std::filesystem;
namespace {

json parse_file(const fs::path& p) {
  std::ifstream in(p);
  if (!in) fail("cannot read {}", p.string());
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    fail("{}: invalid JSON: {}", p.string(), e.what());
  }
}

template <typename T>
std::optional<T> checked_integer(const json& v) {
  return json_integer<T>(v);
}

template <typename T>
T get_or(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (it->is_number()) {
      if (auto v = checked_integer<T>(*it)) return *v;
      fail("config.json: \"{}\" must be an integer in [{}, {}]", key, std::numeric_limits<T>::min(),
           std::numeric_limits<T>::max());
    }
  }
  try {
    return it->get<T>();
  } catch (const std::exception&) {
    fail("config.json: \"{}\" has the wrong type ({})", key, it->type_name());
  }
}

int64_t require_positive(const json& j, const char* key) {
  auto v = get_or<int64_t>(j, key, 0);
  if (v <= 0) fail("config.json: \"{}\" must be a positive integer", key);
  return v;
}

std::vector<int32_t> id_list(const json& v) {
  std::vector<int32_t> out;
  auto add = [&out](const json& x) {
    if (!x.is_number_integer()) return;
    auto id = checked_integer<int32_t>(x);
    if (!id) fail("config.json: token id {} is out of range", x.dump());
    out.push_back(*id);
  };
  add(v);
  if (v.is_array())
    for (const auto& x : v) add(x);
  return out;
}

// Rope settings come as rope_theta + rope_scaling (transformers 4) or rope_parameters (5).
void parse_rope(const json& j, ModelConfig& c) {
  c.rope_theta = get_or<double>(j, "rope_theta", 10000.0);
  json scaling = j.contains("rope_parameters") && j["rope_parameters"].is_object() ? j["rope_parameters"]
                 : j.contains("rope_scaling") && j["rope_scaling"].is_object()    ? j["rope_scaling"]
                                                                                  : json::object();
  if (scaling.contains("rope_theta")) c.rope_theta = get_or<double>(scaling, "rope_theta", c.rope_theta);
  std::string type = get_or<std::string>(scaling, "rope_type", get_or<std::string>(scaling, "type", "default"));
  RopeScaling& r = c.rope_scaling;
  r.type = type;
  r.factor = get_or<double>(scaling, "factor", 1.0);
  r.low_freq_factor = get_or<double>(scaling, "low_freq_factor", 1.0);
  r.high_freq_factor = get_or<double>(scaling, "high_freq_factor", 4.0);
  r.original_max_position_embeddings =
      get_or<int64_t>(scaling, "original_max_position_embeddings", c.max_position_embeddings);
  if (type != "default" && type != "linear" && type != "llama3")
    fail("config.json: rope scaling type '{}' is not supported (default, linear, llama3)", type);
  if (r.factor <= 0) fail("config.json: rope scaling factor must be positive");
}

std::vector<std::string> string_list(const json& q, const char* key) {
  std::vector<std::string> out;
  if (auto it = q.find(key); it != q.end() && it->is_array())
    for (const auto& v : *it)
      if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

// GPTQ (AutoGPTQ / GPTQModel / transformers), AWQ (AutoAWQ, GEMM layout) and FP8 (e4m3:
// per-tensor, per-channel or block-wise scales). Anything else is refused by name.
QuantizationConfig parse_quantization(const json& q) {
  if (!q.is_object()) fail("config.json: \"quantization_config\" must be an object");
  QuantizationConfig c;
  std::string method = get_or<std::string>(q, "quant_method", "");
  for (char& ch : method) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const char* key : {"modules_to_not_convert", "ignored_layers", "ignore"})
    for (const std::string& s : string_list(q, key)) c.skip.push_back(s);
  if (method == "gptq") {
    c.bits = get_or<int>(q, "bits", 0);
    c.group_size = get_or<int64_t>(q, "group_size", 128);
    c.desc_act = get_or<bool>(q, "desc_act", false);
    c.sym = get_or<bool>(q, "sym", true);
    const std::string format = get_or<std::string>(q, "checkpoint_format", get_or<std::string>(q, "format", "gptq"));
    if (format != "gptq" && format != "gptq_v2")
      fail("config.json: GPTQ checkpoint_format '{}' is not supported (gptq, gptq_v2)", format);
    if (get_or<bool>(q, "is_marlin_format", false))
      fail("config.json: GPTQ checkpoints in Marlin's packed format are not supported (plain GPTQ is)");
    c.zeros_plus_one = format == "gptq";
  } else if (method == "awq") {
    c.bits = get_or<int>(q, "bits", get_or<int>(q, "w_bit", 0));
    c.group_size = get_or<int64_t>(q, "group_size", get_or<int64_t>(q, "q_group_size", 128));
    std::string version = get_or<std::string>(q, "version", "gemm");
    for (char& ch : version) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (version != "gemm") fail("config.json: AWQ version '{}' is not supported (gemm is)", version);
    if (!get_or<bool>(q, "zero_point", true)) fail("config.json: AWQ without zero points is not supported");
  } else if (method == "fp8") {
    c.bits = 8;
    const std::string fmt = get_or<std::string>(q, "fmt", "e4m3");
    if (fmt != "e4m3") fail("config.json: FP8 format '{}' is not supported (e4m3 is)", fmt);
    if (auto it = q.find("weight_block_size"); it != q.end() && !it->is_null()) {
      if (!it->is_array() || it->size() != 2 || !(*it)[0].is_number_integer() || !(*it)[1].is_number_integer() ||
          checked_integer<int64_t>((*it)[0]).value_or(0) <= 0 || checked_integer<int64_t>((*it)[1]).value_or(0) <= 0)
        fail("config.json: FP8 weight_block_size must be two positive integers");
      c.fp8_block[0] = *checked_integer<int64_t>((*it)[0]);
      c.fp8_block[1] = *checked_integer<int64_t>((*it)[1]);
    }
  } else {
    fail("config.json: quantization method '{}' is not supported (gptq, awq, fp8)", method);
  }
  c.method = method;
  if (method == "gptq" && c.bits != 4 && c.bits != 8)
    fail("config.json: GPTQ with {} bits is not supported (4 and 8 bits are)", c.bits);
  if (method == "awq" && c.bits != 4) fail("config.json: AWQ with {} bits is not supported (4 bits is)", c.bits);
  if (method != "fp8" && c.group_size != -1 && (c.group_size <= 0 || c.group_size % 32 != 0))
    fail("config.json: {} group_size {} is not supported (a multiple of 32, or -1)", method == "gptq" ? "GPTQ" : "AWQ",
         c.group_size);
  return c;
}

// Qwen2-MoE / Qwen3-MoE fields; absent ones take transformers' class defaults, as
// from_pretrained would.
MoeConfig parse_moe(const json& j, const std::string& model_type) {
  struct Defaults {
    int64_t experts, top_k, intermediate, shared;
  };
  const Defaults d = model_type == "qwen2_moe" ? Defaults{60, 4, 1408, 5632}
                     : model_type == "qwen3_moe" ? Defaults{128, 8, 768, 0}
                                                 : Defaults{0, 0, 0, 0};
  MoeConfig m;
  // transformers 5 writes Qwen3-MoE's num_experts as num_local_experts (Mixtral's name).
  m.num_experts = get_or<int64_t>(j, "num_experts", get_or<int64_t>(j, "num_local_experts", d.experts));
  if (m.num_experts <= 0) return {};
  m.experts_per_token = get_or<int64_t>(j, "num_experts_per_tok", d.top_k);
  m.intermediate_size = get_or<int64_t>(j, "moe_intermediate_size", d.intermediate);
  m.norm_topk_prob = get_or<bool>(j, "norm_topk_prob", false);
  m.decoder_sparse_step = get_or<int64_t>(j, "decoder_sparse_step", 1);
  m.shared_expert_intermediate_size = get_or<int64_t>(j, "shared_expert_intermediate_size", d.shared);
  if (auto it = j.find("mlp_only_layers"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) fail("config.json: \"mlp_only_layers\" must be a list of layer indices");
    for (const auto& v : *it) {
      if (!v.is_number_integer()) fail("config.json: \"mlp_only_layers\" must be a list of layer indices");
      auto layer = checked_integer<int64_t>(v);
      if (!layer) fail("config.json: \"mlp_only_layers\" must be a list of layer indices");
      m.mlp_only_layers.push_back(*layer);
    }
  }
  if (m.experts_per_token <= 0 || m.experts_per_token > m.num_experts)
    fail("config.json: num_experts_per_tok {} must be between 1 and num_experts {}", m.experts_per_token,
         m.num_experts);
  if (m.intermediate_size <= 0) fail("config.json: \"moe_intermediate_size\" must be a positive integer");
  if (m.decoder_sparse_step <= 0) fail("config.json: \"decoder_sparse_step\" must be a positive integer");
  if (m.shared_expert_intermediate_size < 0)
    fail("config.json: \"shared_expert_intermediate_size\" must not be negative");
  return m;
}

}  // namespace

bool MoeConfig::sparse_layer(int64_t layer) const {
  for (int64_t l : mlp_only_layers)
    if (l == layer) return false;
  return num_experts > 0 && (layer + 1) % decoder_sparse_step == 0;
}

ModelConfig ModelConfig::from_json_text(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    fail("config.json: invalid JSON: {}", e.what());
  }
  if (!j.is_object()) fail("config.json: not a JSON object");
  ModelConfig c;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    c.architecture = j["architectures"][0].get<std::string>();
  c.model_type = get_or<std::string>(j, "model_type", "");
  c.vocab_size = require_positive(j, "vocab_size");
  c.hidden_size = require_positive(j, "hidden_size");
  c.intermediate_size = require_positive(j, "intermediate_size");
  c.num_hidden_layers = require_positive(j, "num_hidden_layers");
  c.num_attention_heads = require_positive(j, "num_attention_heads");
  c.num_key_value_heads = get_or<int64_t>(j, "num_key_value_heads", c.num_attention_heads);
  c.head_dim = get_or<int64_t>(j, "head_dim", 0);
  if (c.head_dim <= 0) {
    if (c.hidden_size % c.num_attention_heads != 0)
      fail("config.json: hidden_size {} is not divisible by num_attention_heads {}", c.hidden_size,
           c.num_attention_heads);
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.num_key_value_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0)
    fail("config.json: num_attention_heads {} is not a multiple of num_key_value_heads {}",
         c.num_attention_heads, c.num_key_value_heads);
  if (c.head_dim % 2 != 0) fail("config.json: head_dim {} must be even for rotary embeddings", c.head_dim);
  c.max_position_embeddings = get_or<int64_t>(j, "max_position_embeddings", 2048);
  c.rms_norm_eps = get_or<double>(j, "rms_norm_eps", 1e-6);
  parse_rope(j, c);
  c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false);
  // Qwen2-MoE names its q/k/v biases qkv_bias (default true there).
  c.attention_bias = get_or<bool>(j, "attention_bias", get_or<bool>(j, "qkv_bias", c.model_type == "qwen2_moe"));
  c.hidden_act = get_or<std::string>(j, "hidden_act", "silu");
  c.torch_dtype = get_or<std::string>(j, "dtype", get_or<std::string>(j, "torch_dtype", "float32"));
  if (j.contains("quantization_config") && !j["quantization_config"].is_null())
    c.quantization = parse_quantization(j["quantization_config"]);
  c.moe = parse_moe(j, c.model_type);
  if (j.contains("eos_token_id")) c.eos_token_ids = id_list(j["eos_token_id"]);
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) {
    auto id = checked_integer<int32_t>(j["bos_token_id"]);
    if (!id) fail("config.json: bos_token_id {} is out of range", j["bos_token_id"].dump());
    c.bos_token_id = *id;
  }
  if (get_or<bool>(j, "use_sliding_window", false))
    fail("config.json: sliding-window attention (use_sliding_window) is not supported yet");
  // Mistral-style configs apply `sliding_window` without a use_sliding_window switch (Qwen's
  // carry one, false). Full attention equals windowed attention up to the window, so the
  // context is capped there rather than computing something else beyond it.
  if (!j.contains("use_sliding_window")) {
    const int64_t window = get_or<int64_t>(j, "sliding_window", 0);
    if (window > 0 && window < c.max_position_embeddings) {
      log::warn("config.json: sliding-window attention ({} tokens) is not implemented; context limited to {} tokens",
                window, window);
      c.max_position_embeddings = window;
    }
  }
  return c;
}

ModelConfig ModelConfig::from_dir(const std::string& model_dir) {
  const fs::path dir(model_dir);
  if (!fs::is_directory(dir)) fail("model folder '{}' does not exist", model_dir);
  const fs::path cfg = dir / "config.json";
  if (!fs::exists(cfg)) fail("{}: no config.json in the model folder", model_dir);
  std::ifstream in(cfg);
  std::stringstream ss;
  ss << in.rdbuf();
  ModelConfig c = from_json_text(ss.str());
  const fs::path gen = dir / "generation_config.json";
  if (fs::exists(gen)) {
    json g = parse_file(gen);
    if (g.contains("eos_token_id")) {
      auto ids = id_list(g["eos_token_id"]);
      if (!ids.empty()) c.eos_token_ids = ids;
    }
  }
  return c;
}

}  // namespace ferrum
