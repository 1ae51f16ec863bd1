// GPTQ, AWQ and FP8 weights repacked at load time into the one layout per kind that the
// kernels read (CPU reference and CUDA alike), and their rows dequantized as the CPU
// reference computes them.
//
// The checkpoint layouts (as transformers, AutoGPTQ/GPTQModel and AutoAWQ write them):
// - GPTQ, b = 4 or 8 bits, p = 32 / b values per int32: qweight I32 [in/p, out], input
//   feature k of column n in bits b*(k%p) of qweight[k/p][n]; qzeros I32 [groups, out/p], the
//   zero of column n in bits b*(n%p) of qzeros[g][n/p] (stored minus one, modulo 2^b, in the
//   original "gptq" checkpoint format, as is in "gptq_v2"); scales [groups, out]; g_idx I32
//   [in], the group of each input feature (act-order / desc_act checkpoints permute it).
//   w[n][k] = scales[g][n] * (q - zero).
// - AWQ (GEMM): qweight I32 [in, out/8], eight output columns per int32 in the order
//   0, 2, 4, 6, 1, 3, 5, 7 (column 8j+c in bits 4*kAwqNibble[c]); qzeros I32 [in/group,
//   out/8] packed the same way; scales [in/group, out]. w[n][k] = scales * (q - zero).
// - FP8: E4M3 [out, in] with weight_scale (one, or one per output row) or weight_scale_inv
//   per block of [128, 128] (DeepSeek/Qwen FP8 releases). w = fp8 * scale.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/linear.h"

namespace ferrum {

// 4- or 8-bit weights with a scale and an integer zero point per group of input features.
// Stored columns are input features in act order (perm), so that each group is contiguous.
struct PackedInt {
  int bits = 4;
  int64_t rows = 0, cols = 0, group = 0;  // cols % 32 == 0, group % 32 == 0, cols % group == 0
  // 4 bits: [rows, cols / 2], per 32 stored columns 16 bytes, byte i = column i (low nibble)
  // and column i + 16 (high nibble), as GGUF's Q4_0 orders them. 8 bits: [rows, cols].
  std::vector<uint8_t> qs;
  std::vector<float> scales;    // [rows, cols / group]
  std::vector<uint16_t> zeros;  // [rows, cols / group], 0..2^bits (a v1 zero of 0 reads 2^bits)
  std::vector<int32_t> perm;   // stored column i is input feature perm[i]; empty: the identity
  int64_t groups() const { return cols / group; }
  size_t bytes() const { return qs.size() + scales.size() * 4 + zeros.size() * 2 + perm.size() * 4; }
};

// FP8 E4M3 weights [rows, cols] with one F32 scale per block of [block_rows, block_cols]
// (per tensor: the whole; per channel: [1, cols]).
struct PackedFp8 {
  int64_t rows = 0, cols = 0, block_rows = 0, block_cols = 0;
  std::vector<uint8_t> q;
  std::vector<float> scales;  // [ceil(rows / block_rows), scale_cols()]
  int64_t scale_cols() const { return (cols + block_cols - 1) / block_cols; }
  size_t bytes() const { return q.size() + scales.size() * 4; }
};

// From a part of format Gptq / Awq (its checkpoint tensors, checked against in_features
// and the part's rows; errors name the layer). Bits: p.quant.bits (AWQ: 4).
PackedInt pack_int(const LinearPart& p, int64_t in_features, const std::string& layer);
// From a part of format Fp8: its E4M3 weight and scales, or a dense weight quantized here
// (per output row: scale = max |w| / 448, values rounded to nearest even).
PackedFp8 pack_fp8(const LinearPart& p, int64_t in_features, const std::string& layer);
// A layer part's weight as a backend keeps it: packed from its checkpoint tensors, or random
// for a dummy spec (the part's name seeds it, as dummy_fill.h's pattern does).
PackedInt int_weight(const LinearSpec& spec, const LinearPart& p);
PackedFp8 fp8_weight(const LinearSpec& spec, const LinearPart& p);
// Expert e of a grouped GPTQ/AWQ (FP8) part the same way (LinearPart::expert_extra); errors
// name the expert and the part.
PackedInt expert_int_weight(const LinearSpec& spec, const LinearPart& grouped, int64_t e);
PackedFp8 expert_fp8_weight(const LinearSpec& spec, const LinearPart& grouped, int64_t e);
// Random weights of real shapes for benchmarks (--dummy with a quantization_config).
PackedInt random_int(int64_t rows, int64_t cols, int64_t group, uint64_t seed);  // 4 bits
PackedFp8 random_fp8(int64_t rows, int64_t cols, uint64_t seed);

// Row n as F32 in input-feature order (the CPU reference kernels' view).
void int_row(const PackedInt& w, int64_t n, float* out);
void fp8_row(const PackedFp8& w, int64_t n, float* out);
// x [rows, cols] as the FP8 W8A8 GEMM sees it: each row rounded to E4M3 with the scale
// max |row| / 448 (1 for a zero row), then scaled back (cuda::quantize_rows_fp8's CPU twin).
void fp8_round_rows(float* x, int64_t rows, int64_t cols);

}  // namespace ferrum
