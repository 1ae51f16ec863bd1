// config.json (and generation_config.json) of a Hugging Face decoder model.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ferrum {

struct RopeScaling {
  std::string type = "default";  // default | linear | llama3 | freq_factors
  // freq_factors (GGUF's rope_freqs tensor): inverse frequency i is divided by freq_factors[i].
  std::vector<float> freq_factors;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// config.json's quantization_config: how the linear layers' weights are stored.
struct QuantizationConfig {
  std::string method;        // "" (none), "gptq", "awq" or "fp8"
  int bits = 0;              // 4 or 8 (GPTQ), 4 (AWQ), 8 (FP8)
  int64_t group_size = 0;    // GPTQ/AWQ; -1: one group per row
  bool desc_act = false;     // GPTQ act order (g_idx permutes the groups)
  bool sym = true;           // GPTQ
  bool zeros_plus_one = false;  // GPTQ's original checkpoint format stores zero points minus one
  int64_t fp8_block[2] = {0, 0};  // FP8 weight_block_size, or 0s
  std::vector<std::string> skip;  // modules left unquantized (modules_to_not_convert, ...)
};

// Mixture of experts (Qwen2-MoE, Qwen3-MoE). num_experts 0: every layer's MLP is dense.
struct MoeConfig {
  int64_t num_experts = 0;
  int64_t experts_per_token = 0;     // num_experts_per_tok (top-k)
  int64_t intermediate_size = 0;     // moe_intermediate_size: each expert's SwiGLU width
  bool norm_topk_prob = false;       // renormalize the top-k probabilities to sum 1
  int64_t decoder_sparse_step = 1;   // every step-th layer is sparse
  std::vector<int64_t> mlp_only_layers;         // layers that stay dense
  int64_t shared_expert_intermediate_size = 0;  // Qwen2-MoE's shared expert (0: none)

  // As transformers decides it: sparse unless listed in mlp_only_layers, and every
  // decoder_sparse_step-th layer (counting from 1).
  bool sparse_layer(int64_t layer) const;
};

struct ModelConfig {
  std::string architecture;  // e.g. LlamaForCausalLM
  std::string model_type;    // e.g. llama
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // given, or hidden_size / num_attention_heads
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2 always)
  bool qk_norm = false;         // RMSNorm on q and k per head (Qwen3)
  std::string hidden_act = "silu";
  std::string torch_dtype = "float32";
  QuantizationConfig quantization;
  MoeConfig moe;

  // From generation_config.json (falls back to config.json): ids that end generation.
  std::vector<int32_t> eos_token_ids;
  std::optional<int32_t> bos_token_id;

  static ModelConfig from_dir(const std::string& model_dir);
  static ModelConfig from_json_text(const std::string& config_json);
};

}  // namespace ferrum
