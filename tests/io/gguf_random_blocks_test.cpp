// The random blocks of `ferrum quantize --dummy --random-blocks` (io/gguf_random_blocks.cpp),
// read back by the library's dequantizer: every value finite and within the bound a benchmark
// file's weights need (the float dummy weights are +-0.05), centered on zero, varied within
// and across blocks; every f16 scale a normal number; the same seed gives the same bytes;
// other types are refused by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/gguf_quant.h"

namespace ferrum {
namespace {

constexpr GgmlType kTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                               GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
constexpr int64_t kN = 256 * 64;  // 64 super-blocks, 512 blocks of 32

std::vector<uint8_t> blocks(GgmlType t, uint64_t seed, int64_t n = kN) {
  std::vector<uint8_t> out(ggml_row_bytes(t, n));
  random_blocks(t, seed, out.data(), n);
  return out;
}

TEST(GgufRandomBlocks, DequantizeToSmallFiniteVariedValues) {
  for (const GgmlType t : kTypes) {
    SCOPED_TRACE(ggml_type_name(t));
    ASSERT_TRUE(can_random_blocks(t));
    std::vector<float> y(kN);
    dequantize_row(t, blocks(t, 0x1234 + static_cast<uint64_t>(t)).data(), y.data(), kN);
    double sum = 0, sum2 = 0;
    float amax = 0;
    for (const float v : y) {
      ASSERT_TRUE(std::isfinite(v));
      amax = std::max(amax, std::fabs(v));
      sum += v;
      sum2 += static_cast<double>(v) * v;
    }
    const double mean = sum / kN, rms = std::sqrt(sum2 / kN);
    EXPECT_LT(amax, 0.125f) << "values stay small";
    EXPECT_GT(amax, 0.02f);
    EXPECT_LT(std::fabs(mean), 0.01) << "centered on zero";
    EXPECT_GT(rms, 0.01) << "about the float dummy weights' spread (rms 0.029)";
    EXPECT_LT(rms, 0.06);
    EXPECT_GT(std::set<float>(y.begin(), y.end()).size(), static_cast<size_t>(kN / 8)) << "many distinct values";
    for (int64_t b = 0; b < kN; b += 32)  // and no flat block
      EXPECT_GE(std::set<float>(y.begin() + b, y.begin() + b + 32).size(), 4u) << "block at " << b;
  }
}

// The f16 fields of a row's blocks (d, and m / dmin where the type has one).
template <typename Block>
std::vector<uint16_t> halves(const std::vector<uint8_t>& bytes) {
  std::vector<uint16_t> h;
  for (size_t i = 0; i < bytes.size(); i += sizeof(Block)) {
    Block b;
    std::memcpy(&b, bytes.data() + i, sizeof(Block));
    h.push_back(b.d);
    if constexpr (requires { b.m; }) h.push_back(b.m);
    if constexpr (requires { b.dmin; }) h.push_back(b.dmin);
  }
  return h;
}

TEST(GgufRandomBlocks, ScalesAreNormalHalves) {  // no NaN, Inf or subnormal: exponent neither 0 nor 31
  const std::vector<std::vector<uint16_t>> all = {
      halves<BlockQ4_0>(blocks(GgmlType::Q4_0, 3)), halves<BlockQ4_1>(blocks(GgmlType::Q4_1, 3)),
      halves<BlockQ5_0>(blocks(GgmlType::Q5_0, 3)), halves<BlockQ5_1>(blocks(GgmlType::Q5_1, 3)),
      halves<BlockQ8_0>(blocks(GgmlType::Q8_0, 3)), halves<BlockQ4_K>(blocks(GgmlType::Q4_K, 3)),
      halves<BlockQ5_K>(blocks(GgmlType::Q5_K, 3)), halves<BlockQ6_K>(blocks(GgmlType::Q6_K, 3))};
  for (size_t t = 0; t < all.size(); ++t)
    for (const uint16_t h : all[t]) {
      const int exponent = (h >> 10) & 0x1F;
      ASSERT_TRUE(exponent != 0 && exponent != 31) << "type " << t << " half 0x" << std::hex << h;
    }
}

TEST(GgufRandomBlocks, SameSeedSameBytes) {
  for (const GgmlType t : kTypes) {
    EXPECT_EQ(blocks(t, 7), blocks(t, 7)) << ggml_type_name(t);
    EXPECT_NE(blocks(t, 7), blocks(t, 8)) << ggml_type_name(t);
    const std::vector<uint8_t> one = blocks(t, 9, 256);  // a row's bytes do not depend on its length
    const std::vector<uint8_t> two = blocks(t, 9, 512);
    EXPECT_TRUE(std::equal(one.begin(), one.end(), two.begin())) << ggml_type_name(t);
  }
}

TEST(GgufRandomBlocks, OtherTypesAreRefusedByName) {
  for (const GgmlType t : {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::IQ4_XS, GgmlType::F16}) {
    EXPECT_FALSE(can_random_blocks(t));
    std::vector<uint8_t> buf(ggml_row_bytes(t, 256));
    try {
      random_blocks(t, 1, buf.data(), 256);
      ADD_FAILURE() << ggml_type_name(t) << " was generated";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(ggml_type_name(t)), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace ferrum
