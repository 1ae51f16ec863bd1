// GGUF block weights for the op harness's linear cases, written here from the published block
// layouts (ggml-common.h), not with the library's quantizers or kernels: Q8_0 / Q4_0 blocks
// quantized from random values as llama.cpp rounds them, K-quant super-blocks of random bytes,
// and every format's values as the double-precision reference takes them.
#pragma once
#include <cstdint>

#include "backend/backend.h"
#include "op_harness_reference.h"

namespace ferrum::op_harness {

// Host U8 [rows, K / block values * block bytes] of format f (a GGUF block format), values
// within about +-w_scale.
Tensor make_block_weights(Backend& host, WeightFormat f, int64_t rows, int64_t K, float w_scale, uint64_t seed);

// The values of blocks of format f, row after row.
Values block_values(WeightFormat f, const Tensor& blocks);

}  // namespace ferrum::op_harness
