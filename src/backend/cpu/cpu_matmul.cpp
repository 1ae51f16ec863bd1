// out[M, N] = x[M, K] @ w[N, K]^T on the CPU, with F32 / F16 / BF16 weights and F32 math.
//
// Decode (small M) is bound by reading the weights once: rows of w are converted on the fly
// and each feeds up to 3 rows of x. Prefill (larger M) converts a block of w rows to F32 once
// into a per-thread scratch buffer and reuses it for every row of x, so that the weights are
// read from memory once per call whatever M is. Threads split N.
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"

namespace ferrum::cpu {
namespace {

constexpr int64_t kNBlock = 16;   // w rows converted together
constexpr int64_t kKBlock = 1024; // K range per pass (keeps the x rows in L2)

// Dot products of MB rows of x with NB rows of w over [k0, k1); w rows are F32 (scratch or
// original) or 16-bit, read through load8. acc written to sums[m][n].
template <int MB, int NB, typename WT>
inline void micro(const float* const* xr, const WT* const* wr, DType wt, int64_t k0, int64_t k1,
                  float sums[MB][NB]) {
  int64_t k = k0;
#if FERRUM_AVX2
  __m256 acc[MB][NB];
  for (int m = 0; m < MB; ++m)
    for (int n = 0; n < NB; ++n) acc[m][n] = _mm256_setzero_ps();
  for (; k + 8 <= k1; k += 8) {
    __m256 wv[NB];
    for (int n = 0; n < NB; ++n) {
      if constexpr (std::is_same_v<WT, float>) wv[n] = _mm256_loadu_ps(wr[n] + k);
      else wv[n] = load8(wr[n] + k, wt);
    }
    for (int m = 0; m < MB; ++m) {
      __m256 xv = _mm256_loadu_ps(xr[m] + k);
      for (int n = 0; n < NB; ++n) acc[m][n] = _mm256_fmadd_ps(xv, wv[n], acc[m][n]);
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int n = 0; n < NB; ++n) sums[m][n] = hsum(acc[m][n]);
#else
  for (int m = 0; m < MB; ++m)
    for (int n = 0; n < NB; ++n) sums[m][n] = 0.0f;
#endif
  for (; k < k1; ++k)
    for (int m = 0; m < MB; ++m)
      for (int n = 0; n < NB; ++n) {
        float w;
        if constexpr (std::is_same_v<WT, float>) w = wr[n][k];
        else w = to_f32(wr[n], wt, k);
        sums[m][n] += xr[m][k] * w;
      }
}

// Computes out[m0:m0+MB, n0:n0+NB] (+= when accumulate) for one K block.
template <int MB, int NB, typename WT>
inline void tile(const float* x, int64_t ldx, const WT* w, int64_t ldw, DType wt, float* out, int64_t ldo,
                 int64_t m0, int64_t n0, int64_t k0, int64_t k1, bool accumulate) {
  const float* xr[MB];
  const WT* wr[NB];
  for (int m = 0; m < MB; ++m) xr[m] = x + (m0 + m) * ldx;
  for (int n = 0; n < NB; ++n) wr[n] = w + (n0 + n) * ldw;
  float sums[MB][NB];
  micro<MB, NB, WT>(xr, wr, wt, k0, k1, sums);
  for (int m = 0; m < MB; ++m)
    for (int n = 0; n < NB; ++n) {
      float* o = out + (m0 + m) * ldo + n0 + n;
      *o = accumulate ? *o + sums[m][n] : sums[m][n];
    }
}

template <int MB, typename WT>
inline void row_group(const float* x, int64_t ldx, const WT* w, int64_t ldw, DType wt, float* out, int64_t ldo,
                      int64_t m0, int64_t n0, int64_t n1, int64_t k0, int64_t k1, bool acc) {
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) tile<MB, 4, WT>(x, ldx, w, ldw, wt, out, ldo, m0, n, k0, k1, acc);
  for (; n < n1; ++n) tile<MB, 1, WT>(x, ldx, w, ldw, wt, out, ldo, m0, n, k0, k1, acc);
}

// All rows of x against w rows [n0, n1), for K range [k0, k1). Callers pass w and out already
// offset to their first row/column, so n0 is relative.
template <typename WT>
void block(const float* x, int64_t M, int64_t ldx, const WT* w, int64_t ldw, DType wt, float* out, int64_t ldo,
           int64_t n0, int64_t n1, int64_t k0, int64_t k1, bool acc) {
  int64_t m = 0;
  for (; m + 3 <= M; m += 3) row_group<3, WT>(x, ldx, w, ldw, wt, out, ldo, m, n0, n1, k0, k1, acc);
  if (M - m == 2) row_group<2, WT>(x, ldx, w, ldw, wt, out, ldo, m, n0, n1, k0, k1, acc);
  if (M - m == 1) row_group<1, WT>(x, ldx, w, ldw, wt, out, ldo, m, n0, n1, k0, k1, acc);
}

}  // namespace

void matmul(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  const int64_t M = x.rows(), K = x.cols(), N = w.dim(0);
  FERRUM_CHECK(w.ndim == 2 && w.dim(1) == K, "matmul: x {} and w {} do not match", x.shape_str(), w.shape_str());
  FERRUM_CHECK(out.rows() == M && out.cols() == N, "matmul: out {} should be [{}, {}]", out.shape_str(), M, N);
  const float* xp = x.ptr<float>();
  float* op = out.ptr<float>();
  const DType wt = w.dtype;
  // Prefill: convert w blocks to F32 once. Decode: convert while loading.
  const bool convert = wt != DType::F32 && M >= 4;
  pool.parallel_for(N, kNBlock, [&](int64_t nb, int64_t ne) {
    thread_local std::vector<float> scratch;
    for (int64_t n0 = nb; n0 < ne; n0 += kNBlock) {
      const int64_t n1 = std::min(ne, n0 + kNBlock);
      for (int64_t k0 = 0; k0 < K; k0 += kKBlock) {
        const int64_t k1 = std::min(K, k0 + kKBlock);
        if (wt == DType::F32) {
          block<float>(xp, M, K, w.ptr<float>() + n0 * K, K, wt, op + n0, N, 0, n1 - n0, k0, k1, k0 > 0);
        } else if (convert) {
          const int64_t kc = k1 - k0;
          scratch.resize(static_cast<size_t>(kNBlock * kc));
          for (int64_t n = n0; n < n1; ++n)
            convert_row(w.ptr<uint16_t>() + n * K + k0, wt, kc, scratch.data() + (n - n0) * kc);
          // The scratch holds rows n0.. with stride kc; x is offset to k0 to match.
          block<float>(xp + k0, M, K, scratch.data(), kc, DType::F32, op + n0, N, 0, n1 - n0, 0, kc, k0 > 0);
        } else {
          block<uint16_t>(xp, M, K, w.ptr<uint16_t>() + n0 * K, K, wt, op + n0, N, 0, n1 - n0, k0, k1, k0 > 0);
        }
      }
    }
  });
  if (bias) {
    for (int64_t n = 0; n < N; ++n) {
      const float b = to_f32(bias->data, bias->dtype, n);
      for (int64_t m = 0; m < M; ++m) op[m * N + n] += b;
    }
  }
}

}  // namespace ferrum::cpu
