#include "engine/engine_setup.h"

#include <algorithm>

#include "core/error.h"

namespace ferrum {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Abort: return "abort";
    case FinishReason::Error: return "error";
    case FinishReason::None: break;
  }
  return "";
}

int32_t resolve_num_blocks(const Model& model, const EngineOptions& o) {
  FERRUM_CHECK(o.block_size > 0, "block_size must be positive, got {}", o.block_size);
  if (o.num_kv_blocks > 0) return o.num_kv_blocks;
  const size_t per_block = model.kv_bytes_per_block(o.block_size);
  FERRUM_CHECK(per_block > 0, "model reports 0 bytes per KV block");
  const size_t n = o.kv_cache_bytes / per_block;
  FERRUM_CHECK(n >= 1, "KV cache memory of {} bytes is less than one KV block ({} bytes for {} tokens)",
               o.kv_cache_bytes, per_block, o.block_size);
  return static_cast<int32_t>(std::min<size_t>(n, size_t{1} << 30));
}

void seed_rng(std::mt19937_64& rng, uint64_t seed, int32_t index) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32),
                    static_cast<uint32_t>(index), 0x9e3779b9u};
  rng.seed(seq);
}

}  // namespace ferrum
