// out[M, N] = x[M, K] @ w[N, K]^T on the CPU, with F32 / F16 / BF16 weights and F32 math.
//
// Decode (small M) is bound by reading the weights once. Each thread walks its rows of w one
// at a time, front to back: a single sequential stream per core is what the hardware
// prefetchers serve best (measured here: ~2x the bandwidth of interleaving 4 rows). Each row
// of w feeds up to 4 rows of x. Prefill (larger M) converts a block of w rows to F32 once into
// a per-thread scratch buffer and reuses it for every row of x in register tiles, so that the
// weights are read from memory once per call whatever M is. Threads split N.
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

// Rows [n0, n1) of w, one at a time, against MB rows of x (MB <= 4).
template <int MB, typename WT>
void gemv_rows(const float* x, int64_t ldx, const WT* w, DType wt, int64_t K, float* out, int64_t ldo, int64_t n0,
               int64_t n1) {
  for (int64_t n = n0; n < n1; ++n) {
    const WT* wr = w + n * K;
    float sums[MB];
    int64_t k = 0;
#if FERRUM_AVX2
    __m256 acc[MB][2];
    for (int m = 0; m < MB; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
    for (; k + 16 <= K; k += 16) {
      __m256 w0, w1;
      if constexpr (std::is_same_v<WT, float>) {
        w0 = _mm256_loadu_ps(wr + k), w1 = _mm256_loadu_ps(wr + k + 8);
      } else {
        w0 = load8(wr + k, wt), w1 = load8(wr + k + 8, wt);
      }
      for (int m = 0; m < MB; ++m) {
        acc[m][0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + m * ldx + k), w0, acc[m][0]);
        acc[m][1] = _mm256_fmadd_ps(_mm256_loadu_ps(x + m * ldx + k + 8), w1, acc[m][1]);
      }
    }
    for (int m = 0; m < MB; ++m) sums[m] = hsum(_mm256_add_ps(acc[m][0], acc[m][1]));
#else
    for (int m = 0; m < MB; ++m) sums[m] = 0.0f;
#endif
    for (; k < K; ++k) {
      float wv;
      if constexpr (std::is_same_v<WT, float>) wv = wr[k];
      else wv = to_f32(wr, wt, k);
      for (int m = 0; m < MB; ++m) sums[m] += x[m * ldx + k] * wv;
    }
    for (int m = 0; m < MB; ++m) out[m * ldo + n] = sums[m];
  }
}

template <typename WT>
void gemv(const float* x, int64_t M, int64_t K, const WT* w, DType wt, float* out, int64_t N, int64_t n0, int64_t n1) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) gemv_rows<4, WT>(x + m * K, K, w, wt, K, out + m * N, N, n0, n1);
  const float* xr = x + m * K;
  float* o = out + m * N;
  switch (M - m) {
    case 3: gemv_rows<3, WT>(xr, K, w, wt, K, o, N, n0, n1); break;
    case 2: gemv_rows<2, WT>(xr, K, w, wt, K, o, N, n0, n1); break;
    case 1: gemv_rows<1, WT>(xr, K, w, wt, K, o, N, n0, n1); break;
    default: break;
  }
}

constexpr int64_t kGemvMaxRows = 8;  // up to here each w row is streamed once per 4 rows of x

}  // namespace

void matmul(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  const int64_t M = x.rows(), K = x.cols(), N = w.dim(0);
  FERRUM_CHECK(w.ndim == 2 && w.dim(1) == K, "matmul: x {} and w {} do not match", x.shape_str(), w.shape_str());
  FERRUM_CHECK(out.rows() == M && out.cols() == N, "matmul: out {} should be [{}, {}]", out.shape_str(), M, N);
  const float* xp = x.ptr<float>();
  float* op = out.ptr<float>();
  const DType wt = w.dtype;
  if (M <= kGemvMaxRows) {
    pool.parallel_for(N, kNBlock, [&](int64_t nb, int64_t ne) {
      if (wt == DType::F32) gemv<float>(xp, M, K, w.ptr<float>(), wt, op, N, nb, ne);
      else gemv<uint16_t>(xp, M, K, w.ptr<uint16_t>(), wt, op, N, nb, ne);
    });
  } else {
  // Prefill: convert w blocks to F32 once into scratch and reuse them for every row of x.
  const bool convert = wt != DType::F32;
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
  }
  if (bias) {
    for (int64_t n = 0; n < N; ++n) {
      const float b = to_f32(bias->data, bias->dtype, n);
      for (int64_t m = 0; m < M; ++m) op[m * N + n] += b;
    }
  }
}

}  // namespace ferrum::cpu
