// The GPU's tiled layout for quantized weights (src/backend/cuda/cuda_packed_layout.h), read
// back on the host by the maps its header documents: every code in its lane, step and slot,
// every group's scale and zero point in its word. Host code only, so it runs without a GPU
// (in builds with CUDA).
#include <gtest/gtest.h>

#ifdef FERRUM_CUDA
#include <algorithm>
#include <functional>
#include <random>

#include "backend/cuda/cuda_packed_layout.h"
#include "backend/dummy_fill.h"
#include "core/dtype.h"

namespace ferrum {
namespace {

PackedInt random_packed(int bits, int64_t rows, int64_t cols, int64_t group, bool act_order) {
  std::mt19937_64 rng(bits * 1000 + rows);
  PackedInt w;
  w.bits = bits;
  w.rows = rows;
  w.cols = cols;
  w.group = group;
  w.qs.resize(static_cast<size_t>(rows * cols * bits / 8));
  for (auto& b : w.qs) b = static_cast<uint8_t>(rng());
  for (int64_t i = 0; i < rows * (cols / group); ++i) {
    w.scales.push_back(0.001f * static_cast<float>(1 + rng() % 1000));
    w.zeros.push_back(static_cast<uint16_t>(rng() % (1u << bits)));
  }
  if (act_order) {
    for (int64_t i = 0; i < cols; ++i) w.perm.push_back(static_cast<int32_t>(cols - 1 - i));
  }
  return w;
}

// Stored column i of row n (quant_pack.h's forms).
int code_of(const PackedInt& w, int64_t n, int64_t i) {
  if (w.bits == 8) return w.qs[n * w.cols + i];
  const uint8_t b = w.qs[n * (w.cols / 2) + i / 32 * 16 + i % 16];
  return i % 32 < 16 ? b & 15 : b >> 4;
}

// The header's maps: (row, column c) of a lane's value in step j, whose column in the tile is
// 16t + 4j + c.
void nibble_position(int lane, int p, int& row, int& col) {
  const int g = lane / 4;
  const int rows[8] = {g, g + 8, g, g + 8, g, g + 8, g, g + 8};
  const int cols[8] = {0, 0, 2, 2, 1, 1, 3, 3};
  row = rows[p], col = cols[p];
}
void byte_position(int lane, int b, int& row, int& col) {
  const int g = lane / 4;
  const int rows[8] = {g, g, g + 8, g + 8, g, g, g + 8, g + 8};
  const int cols[8] = {0, 1, 0, 1, 2, 3, 2, 3};
  row = rows[b], col = cols[b];
}

void expect_tiles_hold(const cuda::MmaTiles& t, int bits, const std::function<int(int64_t, int64_t)>& code) {
  const int64_t ktiles = t.cols / 64, tile_bytes = bits == 4 ? 512 : 1024;
  ASSERT_EQ(t.data.size(), static_cast<size_t>(t.padded_rows / 16 * ktiles * tile_bytes));
  for (int64_t nt = 0; nt < t.padded_rows / 16; ++nt)
    for (int64_t kt = 0; kt < ktiles; ++kt)
      for (int lane = 0; lane < 32; ++lane)
        for (int j = 0; j < 4; ++j)
          for (int i = 0; i < 8; ++i) {
            const uint8_t* piece = t.data.data() + ((nt * ktiles + kt) * 32 + lane) * (tile_bytes / 32);
            int r, c, got;
            if (bits == 4) {
              nibble_position(lane, i, r, c);
              uint32_t word = 0;
              for (int b = 0; b < 4; ++b) word |= static_cast<uint32_t>(piece[j * 4 + b]) << (8 * b);
              got = static_cast<int>((word >> (4 * i)) & 15);
            } else {
              byte_position(lane, i, r, c);
              got = piece[j * 8 + i];
            }
            const int64_t n = nt * 16 + r, k = kt * 64 + 16 * (lane % 4) + 4 * j + c;
            ASSERT_EQ(got, n < t.rows ? code(n, k) : 0) << "tile " << nt << "," << kt << " lane " << lane << " step " << j;
          }
}

TEST(CudaPackedLayout, IntTilesHoldEveryCodeWhereTheFragmentsExpectIt) {
  for (int bits : {4, 8})
    for (DType act : {DType::BF16, DType::F16}) {
      const PackedInt w = random_packed(bits, 40, 192, 64, bits == 8);  // rows padded to 48; act order
      const cuda::MmaTiles t = cuda::tile_int(w, act);
      EXPECT_EQ(t.mode, bits == 4 ? cuda::PackedMode::Int4Zero : cuda::PackedMode::Int8Zero);
      EXPECT_EQ(t.padded_rows, 48);
      expect_tiles_hold(t, bits, [&](int64_t n, int64_t i) { return code_of(w, n, i); });
      const auto to_act = [&](float v) { return act == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v); };
      const float magic = bits == 8 ? 1024.0f : act == DType::BF16 ? 128.0f : 1024.0f;
      for (int64_t n = 0; n < t.padded_rows; ++n)
        for (int64_t g = 0; g < (t.cols / t.group); ++g) {
          const uint32_t word = t.params[(n / 16 * (t.cols / t.group) + g) * 16 + n % 16];
          const float scale = n < w.rows ? w.scales[n * w.groups() + g] : 0.0f;
          const float zero = magic + (n < w.rows ? w.zeros[n * w.groups() + g] : 0);
          EXPECT_EQ(word & 0xffff, to_act(scale)) << n << "," << g;
          EXPECT_EQ(word >> 16, bits == 8 ? f32_to_f16(zero) : to_act(zero)) << n << "," << g;
        }
    }
}

TEST(CudaPackedLayout, Fp8TilesHoldEveryByteAndTheBlockScales) {
  PackedFp8 w;
  w.rows = 35, w.cols = 128, w.block_rows = 16, w.block_cols = 64;
  std::mt19937_64 rng(3);
  for (int64_t i = 0; i < w.rows * w.cols; ++i) w.q.push_back(static_cast<uint8_t>(rng() & 0x7e));
  for (int64_t i = 0; i < 3 * 2; ++i) w.scales.push_back(0.01f * static_cast<float>(1 + i));
  const cuda::MmaTiles t = cuda::tile_fp8(w, DType::F16);
  expect_tiles_hold(t, 8, [&](int64_t n, int64_t k) { return w.q[n * w.cols + k]; });
  for (int64_t n = 0; n < w.rows; ++n)
    for (int64_t g = 0; g < 2; ++g)
      EXPECT_EQ(t.params[(n / 16 * 2 + g) * 16 + n % 16] & 0xffff, f32_to_f16(w.scales[n / 16 * 2 + g]));
}

// q/k/v of one GPTQ layer become one piece (one kernel); a dense part, an act-order part or a
// part in another form starts a new one; a joined piece's tiles are its parts' in order.
TEST(CudaPackedLayout, LayersJoinPartsInTheSamePackedForm) {
  LinearSpec spec;
  spec.name = "layer";
  spec.in_features = 128;
  spec.dummy = DType::BF16;  // random packed weights (quant_pack.h), GPTQ groups of 64
  for (int64_t rows : {64, 32, 32}) {
    LinearPart p;
    p.name = "p" + std::to_string(spec.parts.size());
    p.rows = rows;
    p.format = WeightFormat::Gptq;
    p.quant.group_size = 64;
    spec.parts.push_back(p);
  }
  std::vector<cuda::LayerPiece> pieces = cuda::tile_layer(spec, DType::BF16);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].tiles.rows, 128);
  EXPECT_EQ(pieces[0].tiles.padded_rows, 128);
  const cuda::MmaTiles first = cuda::tile_int(random_int(64, 128, 64, dummy_seed("p0")), DType::BF16);
  EXPECT_TRUE(std::equal(first.data.begin(), first.data.end(), pieces[0].tiles.data.begin()));
  EXPECT_TRUE(std::equal(first.params.begin(), first.params.end(), pieces[0].tiles.params.begin()));

  spec.parts[1].format = WeightFormat::Fp8;  // another form in the middle: three pieces
  spec.parts.push_back(spec.parts[0]);
  spec.parts.back().format = WeightFormat::Dense;
  pieces = cuda::tile_layer(spec, DType::BF16);
  ASSERT_EQ(pieces.size(), 4u);
  EXPECT_EQ(pieces[1].tiles.mode, cuda::PackedMode::Fp8);
  EXPECT_EQ(pieces[3].dense, &spec.parts[3]);
}

}  // namespace
}  // namespace ferrum
#endif
