// out[m, n] = x[m, :] . W[n, :] for GGUF Q8_0 weights, as llama.cpp computes it: each row of x
// is quantized once to blocks of 32 int8 with a float scale (max |x| / 127, rounded), and each
// weight block's dot product with it is an integer dot product (AVX2: maddubs on |w| and
// x * sign(w)), scaled by both blocks' scales. Weights stream once per call for all rows.
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"
#include "core/error.h"

namespace ferrum::cpu {
namespace {

constexpr int64_t kBlock = 32, kBlockBytes = 34;  // f16 scale + 32 int8

struct QuantizedRows {
  std::vector<int8_t> q;  // [rows, k]
  std::vector<float> d;   // [rows, k / 32]
};

void quantize_rows(const Tensor& x, QuantizedRows& out) {
  const int64_t rows = x.rows(), k = x.cols(), nb = k / kBlock;
  out.q.resize(static_cast<size_t>(rows * k));
  out.d.resize(static_cast<size_t>(rows * nb));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      const float* v = x.ptr<float>() + r * k + b * kBlock;
      float amax = 0.0f;
      for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(v[j]));
      const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
      out.d[r * nb + b] = d;
      for (int j = 0; j < kBlock; ++j) out.q[r * k + b * kBlock + j] = static_cast<int8_t>(std::roundf(v[j] * id));
    }
}

// Sum over blocks of d_w * d_x * (q_w . q_x) for one weight row and one x row.
float dot_q8_0(const uint8_t* w, const int8_t* qx, const float* dx, int64_t nb) {
#if FERRUM_AVX2
  __m256 acc = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b, w += kBlockBytes) {
    uint16_t h;
    std::memcpy(&h, w, 2);
    const __m256i qw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2));
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qx + b * kBlock));
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(xv, qw));
    const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
    acc = _mm256_fmadd_ps(p, _mm256_set1_ps(f16_to_f32(h) * dx[b]), acc);
  }
  return hsum(acc);
#else
  float s = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += kBlockBytes) {
    uint16_t h;
    std::memcpy(&h, w, 2);
    const int8_t* qw = reinterpret_cast<const int8_t*>(w + 2);
    int32_t dot = 0;
    for (int j = 0; j < kBlock; ++j) dot += static_cast<int32_t>(qw[j]) * qx[b * kBlock + j];
    s += f16_to_f32(h) * dx[b] * static_cast<float>(dot);
  }
  return s;
#endif
}

}  // namespace

void matmul_q8_0(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo) {
  const int64_t M = x.rows(), K = x.cols(), N = w.dim(0), nb = K / kBlock;
  FERRUM_CHECK(x.dtype == DType::F32 && K % kBlock == 0 && w.dtype == DType::U8 && w.dim(1) == nb * kBlockBytes,
               "matmul_q8_0: x {} ({}), w {} ({})", x.shape_str(), dtype_name(x.dtype), w.shape_str(),
               dtype_name(w.dtype));
  thread_local QuantizedRows mine;  // reused from call to call on this thread
  QuantizedRows& qx = mine;         // the workers read this thread's copy, not their own
  quantize_rows(x, qx);
  const auto* wp = static_cast<const uint8_t*>(w.data);
  pool.parallel_for(N, 16, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const float b = bias ? to_f32(bias->data, bias->dtype, n) : 0.0f;
      for (int64_t m = 0; m < M; ++m)
        out[m * ldo + n] = dot_q8_0(wp + n * nb * kBlockBytes, qx.q.data() + m * K, qx.d.data() + m * nb, nb) + b;
    }
  });
}

}  // namespace ferrum::cpu
