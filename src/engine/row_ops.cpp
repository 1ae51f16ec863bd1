#include "engine/row_ops.h"

#include <cmath>
#include <cstring>
#include <limits>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define FERRUM_ROW_AVX2 1
#endif

namespace ferrum::row_ops {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kExpFloor = -87.0f;  // exp below this is under FLT_MIN: weigh 0
constexpr float kLog2e = 1.44269504088896341f;
// Cody-Waite: x = n ln2 + r with ln2 split in two so that r is exact; e^r for |r| <= ln2/2
// by its Taylor series to r^6 (truncation 1.2e-7 relative).
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kPoly[7] = {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};

inline float exp_scalar(float x) {
  if (!(x >= kExpFloor)) return 0.0f;
  const float n = std::nearbyint(x * kLog2e);
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = kPoly[0];
  for (int k = 1; k < 7; ++k) p = p * r + kPoly[k];
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

}  // namespace

float scale_and_max(float* x, size_t n, float scale) {
  size_t i = 0;
  float mx = kNegInf;
#ifdef FERRUM_ROW_AVX2
  const __m256 vs = _mm256_set1_ps(scale);
  __m256 vmax = _mm256_set1_ps(kNegInf);
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    if (scale != 1.0f) {
      v = _mm256_mul_ps(v, vs);
      _mm256_storeu_ps(x + i, v);
    }
    vmax = _mm256_max_ps(v, vmax);  // a NaN in v yields vmax (the second operand)
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vmax);
  for (float l : lanes) mx = l > mx ? l : mx;
#endif
  for (; i < n; ++i) {
    if (scale != 1.0f) x[i] *= scale;
    mx = x[i] > mx ? x[i] : mx;
  }
  return mx;
}

double exp_shifted(const float* x, float* w, size_t n, float shift) {
  size_t i = 0;
  double total = 0.0;
#ifdef FERRUM_ROW_AVX2
  const __m256 vshift = _mm256_set1_ps(shift), vfloor = _mm256_set1_ps(kExpFloor);
  const __m256 vlog2e = _mm256_set1_ps(kLog2e), vhi = _mm256_set1_ps(kLn2Hi), vlo = _mm256_set1_ps(kLn2Lo);
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + i), vshift);
    const __m256 valid = _mm256_cmp_ps(v, vfloor, _CMP_GE_OQ);  // false for NaN, -inf
    v = _mm256_max_ps(v, vfloor);
    const __m256 nf = _mm256_round_ps(_mm256_mul_ps(v, vlog2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 r = _mm256_fnmadd_ps(nf, vlo, _mm256_fnmadd_ps(nf, vhi, v));  // v - n hi - n lo
    __m256 p = _mm256_set1_ps(kPoly[0]);
    for (int k = 1; k < 7; ++k) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kPoly[k]));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nf), _mm256_set1_epi32(127)), 23);
    const __m256 e = _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(bits)), valid);
    _mm256_storeu_ps(w + i, e);
    acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(acc0, acc1));
  total = lanes[0] + lanes[1] + lanes[2] + lanes[3];
#endif
  for (; i < n; ++i) total += (w[i] = exp_scalar(x[i] - shift));
  return total;
}

int32_t argmax(const float* x, size_t n) {
  const float mx = scale_and_max(const_cast<float*>(x), n, 1.0f);  // scale 1: read only
  for (size_t i = 0; i < n; ++i)
    if (x[i] == mx) return static_cast<int32_t>(i);
  return 0;
}

}  // namespace ferrum::row_ops
