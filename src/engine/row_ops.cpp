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
// 2^f = e^(f ln 2) for f in [-0.5, 0.5]: Taylor terms (ln 2)^k / k!, k = 6 .. 0.
constexpr float kPoly[7] = {1.5403530393381609e-4f, 1.3333558146428443e-3f, 9.6181291076284772e-3f,
                            5.5504108664821580e-2f, 2.4022650695910071e-1f, 6.9314718055994531e-1f, 1.0f};

inline float exp_scalar(float x) {
  if (!(x >= kExpFloor)) return 0.0f;
  const float t = x * kLog2e;
  const float n = std::nearbyint(t);
  const float f = t - n;
  float p = kPoly[0];
  for (int k = 1; k < 7; ++k) p = p * f + kPoly[k];
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
  const __m256 vlog2e = _mm256_set1_ps(kLog2e);
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + i), vshift);
    const __m256 valid = _mm256_cmp_ps(v, vfloor, _CMP_GE_OQ);  // false for NaN, -inf
    v = _mm256_max_ps(v, vfloor);
    const __m256 t = _mm256_mul_ps(v, vlog2e);
    const __m256 nf = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_sub_ps(t, nf);
    __m256 p = _mm256_set1_ps(kPoly[0]);
    for (int k = 1; k < 7; ++k) p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(kPoly[k]));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nf), _mm256_set1_epi32(127)), 23);
    const __m256 r = _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(bits)), valid);
    _mm256_storeu_ps(w + i, r);
    acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(r)));
    acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(r, 1)));
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
