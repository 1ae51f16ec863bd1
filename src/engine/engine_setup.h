// What the engine derives from its options and requests before any step: the KV cache's size
// in blocks, and each completion's random generator.
#pragma once
#include <cstdint>
#include <random>

#include "engine/engine.h"
#include "models/model.h"

namespace ferrum {

// o.num_kv_blocks, or as many blocks as o.kv_cache_bytes holds for this model (at least one).
int32_t resolve_num_blocks(const Model& model, const EngineOptions& o);

// Seeds a completion's RNG from the request seed and the completion index.
void seed_rng(std::mt19937_64& rng, uint64_t seed, int32_t index);

}  // namespace ferrum
