// Helpers of the model tests that run a whole prompt through Model::forward.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "models/model.h"

namespace ferrum::test {

// Logits of every position of `ids` fed as one prefill.
inline std::vector<float> prefill_logits(Model& m, const std::vector<int32_t>& ids) {
  const int32_t n = static_cast<int32_t>(ids.size()), blocks = (n + 15) / 16;
  auto cache = m.create_kv_cache(blocks, 16);
  ForwardBatch b;
  b.token_ids = ids;
  for (int32_t i = 0; i < n; ++i) {
    b.positions.push_back(i);
    b.slot_mapping.push_back(i);
    b.logits_indices.push_back(i);
  }
  b.query_start = {0, n};
  b.seq_lens = {n};
  for (int32_t i = 0; i < blocks; ++i) b.block_tables.push_back(i);
  b.max_blocks_per_seq = blocks;
  std::vector<float> logits;
  m.forward(b, *cache, logits);
  return logits;
}

// max |got - want| / max |want|.
inline double max_relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double worst = 0, scale = 0;
  for (float w : want) scale = std::max(scale, static_cast<double>(std::fabs(w)));
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]));
  return worst / scale;
}

// sqrt(sum (got - want)^2 / sum want^2).
inline double rms_relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    den += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

}  // namespace ferrum::test
