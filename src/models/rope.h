#pragma once
#include "backend/backend.h"
#include "io/model_config.h"

namespace ferrum {

// Inverse frequencies for rotary embeddings with the config's scaling (default, linear,
// llama3), computed as transformers does in float32.
std::vector<float> rope_inv_freq(const ModelConfig& config);

// cos/sin tables for positions [0, max_positions), uploaded through the backend.
RopeTable make_rope_table(Backend& backend, const ModelConfig& config, int64_t max_positions);

}  // namespace ferrum
