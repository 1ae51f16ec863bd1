// ggml's tensor types as GGUF stores them: element and block sizes, names, and the
// dequantization of the block formats to float32, following the published block layouts
// (ggml-common.h) exactly. The types in Q4_K_M, Q5_K_M, Q6_K and Q8_0 files are supported;
// others are named so that a loader can refuse them clearly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>

namespace ferrum {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35,
  MXFP4 = 39,
};

struct GgmlTypeInfo {
  const char* name;
  int64_t block_elems;  // values per block (1 for plain types)
  int64_t block_bytes;  // bytes per block
  bool dequantizable;   // dequantize_row supports it
};

// Sizes and name of a type id; nullopt for ids this build does not know at all.
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type);
const char* ggml_type_name(GgmlType t);

// Bytes of n values of type t (n a multiple of the block size; checked by the caller).
uint64_t ggml_row_bytes(GgmlType t, int64_t n);

// y[0, n) = the n values at src (n a multiple of the type's block size). Throws for types
// without dequantization.
void dequantize_row(GgmlType t, const void* src, float* y, int64_t n);

// Quantizes n floats (a multiple of the type's block size) into dst, rounding exactly as
// llama.cpp's reference (scalar, no importance matrix) quantizers do: F32, F16, BF16, Q8_0,
// Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K. Throws for the other types.
void quantize_row(GgmlType t, const float* x, void* dst, int64_t n);
bool can_quantize(GgmlType t);

// n values (whole blocks) of type t as random but valid blocks, for benchmark files of a shape
// (`ferrum quantize --dummy --random-blocks`, gguf_random_blocks.cpp): uniform codes, scales
// drawn so that values dequantize finite, varied and within about +-0.1. The same seed gives
// the same bytes. Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K; throws naming other types.
void random_blocks(GgmlType t, uint64_t seed, void* dst, int64_t n);
bool can_random_blocks(GgmlType t);

// The 6-bit scale and min of sub-block j (0-7) of a Q4_K / Q5_K super-block: 8 pairs packed
// in 12 bytes (the low 6 bits of bytes 0-7 for j < 4; nibbles of bytes 8-11 plus the top 2
// bits of bytes 0-7 for j >= 4).
void ggml_scale_min_k4(int j, const uint8_t* packed, uint8_t& scale, uint8_t& min);

// Block layouts (little-endian, packed, as ggml-common.h).
constexpr int64_t kQK = 32;    // values per block of the 32-value formats
constexpr int64_t kQKK = 256;  // values per K-quant super-block
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

}  // namespace ferrum
