// The layout cuda_packed_matmul.cu reads quantized weights in, built on the host at load time:
// GPTQ/AWQ int4 and FP8 (from quant_pack.h's forms) and GGUF blocks (Q4_0, Q4_K: 4-bit codes;
// Q5_K, Q6_K, Q8_0: 8-bit codes), all as integer (or E4M3) codes with a scale and a zero point
// or offset per group of input features.
//
// Weights are cut into tiles of 16 output features x 64 input features. In a tile, lane l of
// a warp (g = l / 4, t = l % 4) holds rows g and g + 8 at columns [16t, 16t + 16), in one
// 16-byte (4-bit codes) or 32-byte (8-bit codes) piece: a warp reads its tile with one
// coalesced load per lane and decodes it in registers. Tiles are stored n-tile major, k-tiles
// in order (a warp streams along K).
//
// The tile's four k16 MMA steps take K in a permuted order: in step j, lane l's m16n8k16
// A-fragment positions k = 2t, 2t + 1, 2t + 8, 2t + 9 hold columns 16t + 4j + 0, 1, 2, 3. The
// kernels read x's B fragments at the same columns (x row g, columns [16t, 16t + 16): two
// 16-byte loads), so the product is the same, and each lane's 16 columns lie in one group
// (groups are multiples of 16 columns): one scale per lane and tile.
//
// 4-bit, per step (one 32-bit word): nibble p holds (row, column 16t + 4j + c) = p 0: (g, 0),
// 1: (g+8, 0), 2: (g, 2), 3: (g+8, 2), 4..7: the same with c + 1. So (word >> 4q) & 0x000F000F
// puts fragment register q's two values in the two 16-bit halves.
// 8-bit, per step (8 bytes): byte b holds b 0: (g, 0), 1: (g, 1), 2: (g+8, 0), 3: (g+8, 1),
// 4..7: the same at c + 2: each pair of bytes is one fragment register.
//
// Group parameters: one 32-bit word per (n-tile, group, row of the tile), [n-tile][group][16],
// so that a warp's two loads per group are contiguous. Its low half is the scale in the
// activations' type; its high half depends on the mode (PackedMode in cuda_kernels.h). Rows
// are padded to 16 (padding rows have zero scales).
#pragma once
#include <cstdint>
#include <vector>

#include "backend/cuda/cuda_kernels.h"
#include "backend/linear.h"
#include "backend/quant_pack.h"
#include "core/dtype.h"

namespace ferrum::cuda {

struct MmaTiles {
  PackedMode mode = PackedMode::Int4Zero;
  int64_t rows = 0, padded_rows = 0, cols = 0, group = 0;
  std::vector<uint8_t> data;    // tiles
  std::vector<uint32_t> params; // [padded_rows / 16, cols / group, 16]
};

// act: BF16 or F16. cols % 64 == 0. 4-bit GPTQ/AWQ become 4-bit codes, 8-bit GPTQ 8-bit codes.
MmaTiles tile_int(const PackedInt& w, DType act);
MmaTiles tile_fp8(const PackedFp8& w, DType act);
// GGUF blocks U8 [rows, cols / block values * block bytes] of format f.
MmaTiles tile_gguf(const uint8_t* blocks, WeightFormat f, int64_t rows, int64_t cols, DType act);
bool gguf_tiles_supported(WeightFormat f);

// Grouped experts (LinearSpec::num_experts) whose parts are all in one format with tiles (GGUF
// types with tiles; GPTQ without act order, AWQ, FP8), the parts before the last whole n-tiles:
// expert e's parts joined into one weight, the same size for every expert, so that the GPU
// keeps them one after another. Dummy specs (GPTQ/AWQ/FP8) tile random experts.
bool experts_tileable(const LinearSpec& spec);
MmaTiles tile_expert(const LinearSpec& spec, int64_t e, DType act);  // of a spec experts_tileable accepts

// A quantized layer's parts as the GPU keeps them. Each run of consecutive parts in the same
// packed form (q/k/v of one GPTQ layer; gate and up) is joined into one weight, so that it
// runs as one kernel: tiles and parameters are n-tile major, so joining is appending, where
// the parts before are whole tiles of 16 rows. Act-order parts (their own permutation of x)
// and dense parts (GGUF tensors of types without tiles, dequantized) stand alone. Dummy specs
// get random packed weights (quant_pack.h).
struct LayerPiece {
  MmaTiles tiles;                     // packed pieces
  std::vector<int32_t> perm;          // GPTQ act order: stored column i is input feature perm[i]
  const LinearPart* dense = nullptr;  // or a dense part of the spec
  // FP8 with one scale per output row (per channel or per tensor), when asked for: the E4M3
  // codes [rows, K] as stored and each row's scale, for the W8A8 GEMM (cuda_fp8_gemm.h).
  std::vector<uint8_t> fp8_codes;
  std::vector<float> fp8_row_scales;
};
// fp8_rows: keep the FP8 pieces' codes by rows too (LayerPiece::fp8_codes).
std::vector<LayerPiece> tile_layer(const LinearSpec& spec, DType act, bool fp8_rows = false);

}  // namespace ferrum::cuda
