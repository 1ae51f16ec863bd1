// out[M, N] = x[M, K] @ w[N, K]^T on the CPU, with F32 / F16 / BF16 weights and F32 math.
//
// Decode (small M) is bound by reading the weights once. Each thread walks its rows of w one
// at a time, front to back: a single sequential stream per core is what the hardware
// prefetchers serve best (measured here: ~2x the bandwidth of interleaving 4 rows). Each row
// of w feeds up to 4 rows of x. Prefill (larger M) is a packed GEMM: a block of 16 rows of w
// (the output columns) x 256 of K is converted to F32 once, transposed into a [k][16] panel,
// and a 6x16 register tile (12 accumulators) runs over it for every 6 rows of x, broadcasting
// one x value per row and step. The weights are read from memory once per call whatever M is.
// Threads split N.
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"

namespace ferrum::cpu {
namespace {

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
constexpr int64_t kNR = 16;          // output columns per panel (two 8-wide vectors)
constexpr int64_t kMR = 6;           // rows of x per register tile (the kernel is written for 6)
constexpr int64_t kKC = 256;         // K per panel: the panel (16 KB) stays in L1


// Packs w rows [n0, n0 + nr) x K range [k0, k0 + kc) into panel[k][kNR] as F32 (zero-padded
// columns past nr).
void pack_panel(const Tensor& w, int64_t n0, int64_t nr, int64_t k0, int64_t kc, float* panel) {
  const int64_t K = w.dim(1);
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(kc));
  for (int64_t j = 0; j < kNR; ++j) {
    if (j < nr) {
      const char* src = static_cast<const char*>(w.data) + ((n0 + j) * K + k0) * static_cast<int64_t>(dtype_size(w.dtype));
      convert_row(src, w.dtype, kc, row.data());
      for (int64_t k = 0; k < kc; ++k) panel[k * kNR + j] = row[k];
    } else {
      for (int64_t k = 0; k < kc; ++k) panel[k * kNR + j] = 0.0f;
    }
  }
}

// Packs x rows [0, M) x K range [k0, k0 + kc) into tiles of kMR rows: a[t][k][kMR], rows past
// M zero. Packing keeps the tile's loads contiguous (rows of x are K floats apart, often 4 KB:
// unpacked they all fall into one cache set).
void pack_rows(const float* x, int64_t M, int64_t K, int64_t k0, int64_t kc, float* a) {
  for (int64_t t = 0; t * kMR < M; ++t) {
    float* dst = a + t * kc * kMR;
    for (int64_t m = 0; m < kMR; ++m) {
      const int64_t row = t * kMR + m;
      if (row < M) {
        const float* src = x + row * K + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * kMR + m] = src[k];
      } else {
        for (int64_t k = 0; k < kc; ++k) dst[k * kMR + m] = 0.0f;
      }
    }
  }
}

// out[0:mr, 0:nr] (+)= a[0:kc][0:kMR] @ panel[0:kc][0:kNR], both packed.
void tile(const float* a, const float* panel, int64_t kc, float* out, int64_t ldo, int64_t mr, int64_t nr, bool acc) {
  alignas(32) float buf[kMR][kNR];
#if FERRUM_AVX2
  // Twelve named accumulators: with an array, GCC 12 spills them to the stack every step.
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(panel + k * kNR), b1 = _mm256_loadu_ps(panel + k * kNR + 8);
    const float* ak = a + k * kMR;
    __m256 av = _mm256_broadcast_ss(ak + 0);
    c00 = _mm256_fmadd_ps(av, b0, c00), c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(ak + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10), c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(ak + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20), c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(ak + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30), c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(ak + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40), c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(ak + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50), c51 = _mm256_fmadd_ps(av, b1, c51);
  }
  _mm256_store_ps(buf[0], c00), _mm256_store_ps(buf[0] + 8, c01);
  _mm256_store_ps(buf[1], c10), _mm256_store_ps(buf[1] + 8, c11);
  _mm256_store_ps(buf[2], c20), _mm256_store_ps(buf[2] + 8, c21);
  _mm256_store_ps(buf[3], c30), _mm256_store_ps(buf[3] + 8, c31);
  _mm256_store_ps(buf[4], c40), _mm256_store_ps(buf[4] + 8, c41);
  _mm256_store_ps(buf[5], c50), _mm256_store_ps(buf[5] + 8, c51);
#else
  for (int m = 0; m < kMR; ++m)
    for (int64_t j = 0; j < kNR; ++j) buf[m][j] = 0.0f;
  for (int64_t k = 0; k < kc; ++k)
    for (int m = 0; m < kMR; ++m)
      for (int64_t j = 0; j < kNR; ++j) buf[m][j] += a[k * kMR + m] * panel[k * kNR + j];
#endif
  for (int64_t m = 0; m < mr; ++m)
    for (int64_t j = 0; j < nr; ++j) out[m * ldo + j] = acc ? out[m * ldo + j] + buf[m][j] : buf[m][j];
}

// Columns [n0, n1) of out for all M rows.
void gemm_columns(const float* x, int64_t M, int64_t K, const Tensor& w, float* out, int64_t N, int64_t n0, int64_t n1) {
  thread_local std::vector<float> panel, a;
  panel.resize(static_cast<size_t>(kKC * kNR));
  const int64_t tiles = (M + kMR - 1) / kMR;
  a.resize(static_cast<size_t>(tiles * kMR * kKC));
  for (int64_t k0 = 0; k0 < K; k0 += kKC) {
    const int64_t kc = std::min(kKC, K - k0);
    pack_rows(x, M, K, k0, kc, a.data());
    for (int64_t nb = n0; nb < n1; nb += kNR) {
      const int64_t nr = std::min(kNR, n1 - nb);
      pack_panel(w, nb, nr, k0, kc, panel.data());
      for (int64_t t = 0; t < tiles; ++t)
        tile(a.data() + t * kc * kMR, panel.data(), kc, out + t * kMR * N + nb, N, std::min(kMR, M - t * kMR), nr,
             k0 > 0);
    }
  }
}

}  // namespace

void matmul(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  const int64_t M = x.rows(), K = x.cols(), N = w.dim(0);
  FERRUM_CHECK(w.ndim == 2 && w.dim(1) == K, "matmul: x {} and w {} do not match", x.shape_str(), w.shape_str());
  FERRUM_CHECK(out.rows() == M && out.cols() == N, "matmul: out {} should be [{}, {}]", out.shape_str(), M, N);
  FERRUM_CHECK(w.dtype == DType::F32 || w.dtype == DType::F16 || w.dtype == DType::BF16,
               "matmul: weights of dtype {} are not supported", dtype_name(w.dtype));
  const float* xp = x.ptr<float>();
  float* op = out.ptr<float>();
  const DType wt = w.dtype;
  if (M <= kGemvMaxRows) {
    pool.parallel_for(N, kNR, [&](int64_t nb, int64_t ne) {
      if (wt == DType::F32) gemv<float>(xp, M, K, w.ptr<float>(), wt, op, N, nb, ne);
      else gemv<uint16_t>(xp, M, K, w.ptr<uint16_t>(), wt, op, N, nb, ne);
    });
  } else {
    pool.parallel_for(N, kNR, [&](int64_t nb, int64_t ne) { gemm_columns(xp, M, K, w, op, N, nb, ne); });
  }
  if (bias) {
    for (int64_t n = 0; n < N; ++n) {
      const float b = to_f32(bias->data, bias->dtype, n);
      for (int64_t m = 0; m < M; ++m) op[m * N + n] += b;
    }
  }
}

}  // namespace ferrum::cpu
