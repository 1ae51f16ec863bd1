// The Llama-family decoder (Llama 2/3, Mistral, Qwen2, Qwen3): pre-norm blocks of attention
// (GQA/MQA, optional q/k/v bias, optional q/k RMSNorm, rotary embeddings) and a SwiGLU MLP.
// The architectures differ only in the options below, chosen by the registry.
#pragma once
#include <optional>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "models/model.h"

namespace ferrum {

struct DecoderOptions {
  bool qkv_bias = false;  // Qwen2
  bool qk_norm = false;   // Qwen3
  // Fill every weight with random values of this dtype instead of reading them (benchmarks
  // of real shapes without multi-GB files, like vLLM's --load-format dummy).
  std::optional<DType> dummy_weights;
  // --quantization fp8: dense linear weights quantized to FP8 E4M3 at load (per output row).
  bool online_fp8 = false;
  // --kv-cache-dtype (model.h): Fp8E4M3 keeps the KV cache in E4M3, where the backend can.
  KvCacheDtype kv_cache_dtype = KvCacheDtype::Auto;
};

// config.json's `architectures` entry, or the one its `model_type` implies (registry.cpp).
std::string architecture_of(const ModelConfig& c);

std::unique_ptr<Model> make_decoder_model(const ModelConfig& config, const DecoderOptions& options,
                                          WeightStore weights, std::unique_ptr<Backend> backend);

}  // namespace ferrum
