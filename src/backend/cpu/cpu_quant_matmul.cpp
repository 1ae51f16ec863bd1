// out[m, n] = x[m, :] . W[n, :] for GGUF Q8_0 and Q4_0 weights, as llama.cpp computes it: each
// row of x is quantized once to blocks of 32 int8 with a float scale (max |x| / 127, rounded),
// and each weight block's dot product with it is an integer dot product (AVX2: maddubs on |w|
// and x * sign(w)), scaled by both blocks' scales. Weights stream once per call for all rows.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"
#include "core/error.h"

namespace ferrum::cpu {
namespace {

constexpr int64_t kBlock = 32;

// A weight block's 32 values as int8 (Q8_0: as stored; Q4_0: nibbles minus 8, low nibbles
// first) and its size in bytes.
struct Q8Block {
  static constexpr int64_t kBytes = 34;  // f16 scale + 32 int8
#if FERRUM_AVX2
  static __m256i values(const uint8_t* w) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2)); }
#endif
  static int value(const uint8_t* w, int j) { return static_cast<int8_t>(w[2 + j]); }
};
struct Q4Block {
  static constexpr int64_t kBytes = 18;  // f16 scale + 16 bytes of two 4-bit values
#if FERRUM_AVX2
  static __m256i values(const uint8_t* w) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2));
    const __m128i lo = _mm_and_si128(q, _mm_set1_epi8(0x0F));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(q, 4), _mm_set1_epi8(0x0F));
    return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
  }
#endif
  static int value(const uint8_t* w, int j) { return (j < 16 ? (w[2 + j] & 0xF) : (w[2 + j - 16] >> 4)) - 8; }
};

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

inline float half_to_float(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
#if FERRUM_AVX2
  return _cvtsh_ss(h);  // F16C, part of x86-64-v3
#else
  return f16_to_f32(h);
#endif
}

// out[r] = sum over blocks of d_w * d_x[r] * (q_w . q_x[r]) for one weight row and R rows of x
// (R <= 4), each weight block loaded once for all of them.
template <typename B, int R>
void dot_rows(const uint8_t* w, const int8_t* qx, const float* dx, int64_t k, int64_t nb, float* out) {
#if FERRUM_AVX2
  __m256 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b, w += B::kBytes) {
    const float dw = half_to_float(w);
    const __m256i qw = B::values(w);
    const __m256i aw = _mm256_sign_epi8(qw, qw);
    for (int r = 0; r < R; ++r) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qx + r * k + b * kBlock));
      const __m256i p16 = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, qw));
      const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
      acc[r] = _mm256_fmadd_ps(p, _mm256_set1_ps(dw * dx[r * nb + b]), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
#else
  for (int r = 0; r < R; ++r) out[r] = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += B::kBytes) {
    const float dw = half_to_float(w);
    for (int r = 0; r < R; ++r) {
      int32_t dot = 0;
      for (int j = 0; j < kBlock; ++j) dot += B::value(w, j) * qx[r * k + b * kBlock + j];
      out[r] += dw * dx[r * nb + b] * static_cast<float>(dot);
    }
  }
#endif
}

}  // namespace

namespace {

template <typename B>
void matmul_blocks(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo,
                   const char* what) {
  const int64_t M = x.rows(), K = x.cols(), N = w.dim(0), nb = K / kBlock;
  FERRUM_CHECK(x.dtype == DType::F32 && K % kBlock == 0 && w.dtype == DType::U8 && w.dim(1) == nb * B::kBytes,
               "{}: x {} ({}), w {} ({})", what, x.shape_str(), dtype_name(x.dtype), w.shape_str(), dtype_name(w.dtype));
  thread_local QuantizedRows mine;  // reused from call to call on this thread
  QuantizedRows& qx = mine;         // the workers read this thread's copy, not their own
  quantize_rows(x, qx);
  const auto* wp = static_cast<const uint8_t*>(w.data);
  pool.parallel_for(N, 16, [&](int64_t begin, int64_t end) {
    float dots[4];
    for (int64_t n = begin; n < end; ++n) {
      const float b = bias ? to_f32(bias->data, bias->dtype, n) : 0.0f;
      const uint8_t* row = wp + n * nb * B::kBytes;
      for (int64_t m = 0; m < M; m += 4) {
        const int8_t* q = qx.q.data() + m * K;
        const float* d = qx.d.data() + m * nb;
        const int64_t r = std::min<int64_t>(4, M - m);
        if (r == 4) dot_rows<B, 4>(row, q, d, K, nb, dots);
        else if (r == 3) dot_rows<B, 3>(row, q, d, K, nb, dots);
        else if (r == 2) dot_rows<B, 2>(row, q, d, K, nb, dots);
        else dot_rows<B, 1>(row, q, d, K, nb, dots);
        for (int64_t i = 0; i < r; ++i) out[(m + i) * ldo + n] = dots[i] + b;
      }
    }
  });
}

}  // namespace

void matmul_q8_0(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo) {
  matmul_blocks<Q8Block>(pool, x, w, bias, out, ldo, "matmul_q8_0");
}

void matmul_q4_0(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo) {
  matmul_blocks<Q4Block>(pool, x, w, bias, out, ldo, "matmul_q4_0");
}

}  // namespace ferrum::cpu
