// FP8 E4M3 conversions: every code decodes to its value, and encoding picks the nearest code
// (ties to the even one), saturating at 448, on values near every code and between codes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/dtype.h"

namespace ferrum {
namespace {

double value_of(int code) {  // from the format's definition: bias 7, 3 mantissa bits
  const int e = (code >> 3) & 15, m = code & 7;
  const double mag = e == 0 ? m / 8.0 * std::pow(2.0, -6) : (1 + m / 8.0) * std::pow(2.0, e - 7);
  return code & 0x80 ? -mag : mag;
}

// The nearest finite code by search over all 254 of them (ties to the even code).
uint8_t nearest(float x) {
  int best = 0;
  double best_d = INFINITY;
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) continue;  // NaN
    if ((c & 0x80) != (std::signbit(x) ? 0x80 : 0)) continue;
    const double d = std::fabs(value_of(c) - x);
    if (d < best_d || (d == best_d && c % 2 == 0)) best = c, best_d = d;
  }
  return static_cast<uint8_t>(best);
}

TEST(Fp8E4M3, DecodesEveryCode) {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) {
      EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(static_cast<uint8_t>(c))));
      continue;
    }
    EXPECT_EQ(fp8_e4m3_to_f32(static_cast<uint8_t>(c)), static_cast<float>(value_of(c))) << c;
  }
}

TEST(Fp8E4M3, EncodesToTheNearestCode) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int c = 0; c < 0x7f; ++c) {
    const float v = static_cast<float>(value_of(c));
    const float next = static_cast<float>(value_of(c + 1 == 0x7f ? c : c + 1));
    for (float x : {v, (v + next) / 2, v + (next - v) * 0.49f, v + (next - v) * 0.51f, -v, -(v + next) / 2}) {
      EXPECT_EQ(f32_to_fp8_e4m3(x), nearest(x)) << x;
    }
  }
  for (int i = 0; i < 20000; ++i) {
    const float x = u(rng) * std::pow(2.0f, static_cast<float>(i % 24) - 14.0f);
    EXPECT_EQ(f32_to_fp8_e4m3(x), nearest(x)) << x;
  }
  EXPECT_EQ(f32_to_fp8_e4m3(1000.0f), 0x7e);
  EXPECT_EQ(f32_to_fp8_e4m3(-1000.0f), 0xfe);
  EXPECT_EQ(f32_to_fp8_e4m3(450.0f), 0x7e);
}

}  // namespace
}  // namespace ferrum
