// GPTQ, AWQ and FP8 checkpoint tensors for the op harness's linear cases, written here from
// the published layouts (not with backend/quant_pack.cpp), and the values they stand for as
// the double-precision reference takes them.
#pragma once
#include <cstdint>

#include "backend/backend.h"
#include "op_harness_reference.h"

namespace ferrum::op_harness {

// Layout variants: GPTQ 0: group 32, act order (shuffled g_idx), zeros stored minus one;
// 1: one group per row, no g_idx; 2: group 64 with the identity's g_idx; 3: as 0 in 8 bits.
// AWQ 0: group 32; 1: group 64. FP8 0: one scale; 1: one per row; 2: blocks of [32, 64].
constexpr int kPackedVariants = 4;
bool has_packed_variant(WeightFormat f, int variant);

// Fills p.weight, p.extra and p.quant for a part of p.rows output features of format f
// (Gptq, Awq or Fp8), values within about +-w_scale.
void make_packed_part(Backend& host, WeightFormat f, int variant, int64_t K, float w_scale, uint64_t seed,
                      LinearPart& p);
// The part's weight [rows, K], row after row.
Values packed_values(const LinearPart& p, int64_t K);

}  // namespace ferrum::op_harness
