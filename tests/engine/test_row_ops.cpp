// The sampler's row kernels against std:: reference loops, on odd lengths (vector tails).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "engine/row_ops.h"

namespace ferrum {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> random_row(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-30.0f, 30.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = d(rng);
  return x;
}

TEST(RowOps, ExpShiftedMatchesStdExp) {
  for (size_t n : {1u, 7u, 8u, 9u, 1000u, 32001u}) {
    auto x = random_row(n, static_cast<uint32_t>(n));
    if (n > 3) {
      x[1] = -kInf;
      x[2] = std::numeric_limits<float>::quiet_NaN();
    }
    float mx = -kInf;
    for (float v : x) mx = v > mx ? v : mx;
    std::vector<float> w(n);
    const double total = row_ops::exp_shifted(x.data(), w.data(), n, mx);
    double ref_total = 0;
    for (size_t i = 0; i < n; ++i) {
      const double ref = std::isnan(x[i]) || x[i] - mx < -87.0f ? 0.0 : std::exp(static_cast<double>(x[i] - mx));
      ref_total += ref;
      EXPECT_NEAR(w[i], ref, 4e-7 * ref + 1e-38) << "n=" << n << " i=" << i << " x=" << x[i];
    }
    EXPECT_NEAR(total, ref_total, 1e-6 * ref_total);
  }
}

TEST(RowOps, ScaleAndMaxAndArgmax) {
  for (size_t n : {1u, 5u, 8u, 13u, 4099u}) {
    auto x = random_row(n, 99 + static_cast<uint32_t>(n));
    auto scaled = x;
    const float mx = row_ops::scale_and_max(scaled.data(), n, 0.5f);
    float ref = -kInf;
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(scaled[i], x[i] * 0.5f);
      ref = std::max(ref, x[i] * 0.5f);
    }
    EXPECT_EQ(mx, ref);
    const auto best = std::max_element(x.begin(), x.end()) - x.begin();
    EXPECT_EQ(row_ops::argmax(x.data(), n), best);
  }
  std::vector<float> ties{1.0f, std::numeric_limits<float>::quiet_NaN(), 3.0f, 2.0f, 3.0f, 0, 0, 0, 3.0f, 1.0f};
  EXPECT_EQ(row_ops::argmax(ties.data(), ties.size()), 2);  // first maximum; NaN never wins
}

}  // namespace
}  // namespace ferrum
