// Mixture-of-experts decoders: Qwen3-MoE, and Qwen2-MoE with its shared expert.
#pragma once
#include "models/decoder_model.h"

namespace ferrum {

std::unique_ptr<Model> make_moe_decoder_model(const ModelConfig& config, const DecoderOptions& options,
                                              WeightStore weights, std::unique_ptr<Backend> backend);

}  // namespace ferrum
