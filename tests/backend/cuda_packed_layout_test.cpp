// The GPU's tiled layout for quantized weights (src/backend/cuda/cuda_packed_layout.h), read
// back on the host by the maps its header documents: every code in its lane, step and slot,
// every group's scale and zero point in its word. Host code only, so it runs without a GPU
// (in builds with CUDA).
#include <gtest/gtest.h>

#ifdef FERRUM_CUDA
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "backend/cuda/cuda_packed_layout.h"
#include "backend/cuda/cuda_packed_q8_math.h"
#include "backend/dummy_fill.h"
#include "core/dtype.h"
#include "op_harness_blocks.h"

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


// ---------------------------------------------------------------- int8-x decode arithmetic

// What packed_q8_kernel computes, with the functions it runs (cuda_packed_q8_math.h), walked
// here over every n-tile, k-tile and lane as the kernel walks them: x [M, K] rounded to int8 per
// 16 columns, each lane's words and group parameters of a tile. out [M, rows].
template <cuda::PackedMode kMode>
std::vector<double> emulate_q8(const cuda::MmaTiles& t, const std::vector<float>& x, int64_t M, bool bf16) {
  namespace q8 = cuda::q8;
  const int64_t K = t.cols, ktiles = K / 64, groups = K / t.group, chunks = K / q8::kChunk;
  const int64_t piece = q8::nibbles(kMode) ? 16 : 32;  // bytes per lane and tile
  std::vector<uint32_t> xq(static_cast<size_t>(M * chunks * 4));
  std::vector<float> xs(static_cast<size_t>(M * chunks));
  std::vector<int> xsum(static_cast<size_t>(M * chunks));
  for (int64_t c = 0; c < M * chunks; ++c)
    q8::quantize_chunk(&x[c * q8::kChunk], q8::nibbles(kMode), &xq[c * 4], xs[c], xsum[c]);
  std::vector<double> out(static_cast<size_t>(M * t.rows), 0.0);
  for (int64_t nt = 0; nt < t.padded_rows / 16; ++nt)
    for (int64_t kt = 0; kt < ktiles; ++kt)
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, tt = lane % 4;
        uint32_t words[8];
        std::memcpy(words, t.data.data() + ((nt * ktiles + kt) * 32 + lane) * piece, piece);
        const int64_t grp = (kt * 64 + 16 * tt) / t.group;
        const uint32_t prm[2] = {t.params[(nt * groups + grp) * 16 + g], t.params[(nt * groups + grp) * 16 + g + 8]};
        uint32_t codes[2][4];
        q8::tile_codes<kMode>(words, codes);
        for (int64_t m = 0; m < M; ++m) {
          const int64_t c = m * chunks + kt * 4 + tt;
          for (int r = 0; r < 2; ++r) {
            const int64_t n = nt * 16 + g + 8 * r;
            if (n < t.rows)
              out[m * t.rows + n] += q8::tile_row_sum<kMode>(codes[r], prm[r], &xq[c * 4], xs[c], xsum[c], bf16);
          }
        }
      }
  return out;
}

// x as the kernel sees it after rounding: scale * round(x / scale) per 16 columns.
std::vector<float> rounded_x(const std::vector<float>& x) {
  std::vector<float> r(x.size());
  for (size_t c = 0; c < x.size(); c += 16) {
    float amax = 0.0f;
    for (size_t i = c; i < c + 16; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float scale = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0.0f;
    for (size_t i = c; i < c + 16; ++i) r[i] = scale * std::rint(x[i] * inv);
  }
  return r;
}

// emulate_q8 against rounded x times the weight w [rows, K] (a format's own dequantization):
// within 1% of the outputs' RMS (the group parameters are rounded to 16 bits); a code, column or
// parameter read from the wrong place is off by the outputs' size.
void expect_q8_matches(const cuda::MmaTiles& t, const std::vector<float>& w, int64_t M, bool bf16, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(M * t.cols));
  for (float& v : x) v = normal(rng);
  std::vector<double> got;
  switch (t.mode) {
    case cuda::PackedMode::Int4Zero: got = emulate_q8<cuda::PackedMode::Int4Zero>(t, x, M, bf16); break;
    case cuda::PackedMode::Int4Affine: got = emulate_q8<cuda::PackedMode::Int4Affine>(t, x, M, bf16); break;
    case cuda::PackedMode::Int8Zero: got = emulate_q8<cuda::PackedMode::Int8Zero>(t, x, M, bf16); break;
    case cuda::PackedMode::Int8Affine: got = emulate_q8<cuda::PackedMode::Int8Affine>(t, x, M, bf16); break;
    case cuda::PackedMode::Fp8: FAIL() << "FP8 codes take the 16-bit path";
  }
  const std::vector<float> xr = rounded_x(x);
  double sq = 0.0, worst = 0.0;
  std::vector<double> ref(got.size());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < t.rows; ++n) {
      double y = 0.0;
      for (int64_t k = 0; k < t.cols; ++k) y += static_cast<double>(xr[m * t.cols + k]) * w[n * t.cols + k];
      ref[m * t.rows + n] = y;
      sq += y * y;
    }
  const double rms = std::sqrt(sq / static_cast<double>(ref.size()));
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(got[i] - ref[i]));
  EXPECT_GT(rms, 0.0);
  EXPECT_LE(worst, 1e-2 * rms) << "worst error " << worst << " against outputs of RMS " << rms;
}

TEST(CudaPackedQ8, IntTilesTimesInt8XMatchTheWeights) {
  for (int bits : {4, 8})
    for (DType act : {DType::BF16, DType::F16}) {
      SCOPED_TRACE(fmt::format("{} bits, {}", bits, dtype_name(act)));
      const PackedInt p = random_packed(bits, 40, 256, 64, false);
      const cuda::MmaTiles t = cuda::tile_int(p, act);
      std::vector<float> w(static_cast<size_t>(p.rows * p.cols));
      for (int64_t n = 0; n < p.rows; ++n)
        for (int64_t i = 0; i < p.cols; ++i) {
          const int64_t g = n * p.groups() + i / p.group;
          w[n * p.cols + i] = p.scales[g] * static_cast<float>(code_of(p, n, i) - p.zeros[g]);
        }
      expect_q8_matches(t, w, 3, act == DType::BF16, 11 + bits);
    }
}

TEST(CudaPackedQ8, GgufTilesTimesInt8XMatchTheBlocks) {
  // Blocks and their values from the op harness, written from the published layouts.
  const std::unique_ptr<Backend> host = make_cpu_backend(1);
  const int64_t rows = 24, cols = 512;
  uint64_t seed = 5;
  for (WeightFormat format : {WeightFormat::GgufQ4_0, WeightFormat::GgufQ4K, WeightFormat::GgufQ5K,
                              WeightFormat::GgufQ6K, WeightFormat::GgufQ8_0})
    for (DType act : {DType::BF16, DType::F16}) {
      SCOPED_TRACE(fmt::format("{}, {}", weight_format_name(format), dtype_name(act)));
      const Tensor blocks = op_harness::make_block_weights(*host, format, rows, cols, 0.05f, ++seed);
      const op_harness::Values v = op_harness::block_values(format, blocks);
      const std::vector<float> w(v.begin(), v.end());
      const cuda::MmaTiles t = cuda::tile_gguf(blocks.ptr<uint8_t>(), format, rows, cols, act);
      expect_q8_matches(t, w, 2, act == DType::BF16, seed);
    }
}
}  // namespace
}  // namespace ferrum
#endif
