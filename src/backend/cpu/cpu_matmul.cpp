// out[M, N] = x[M, K] @ w[N, K]^T on the CPU, with F32 / F16 / BF16 weights and F32 math.
//
// Decode (small M) is bound by reading the weights once. Each thread walks its rows of w one
// at a time, front to back: a single sequential stream per core is what the hardware
// prefetchers serve best (measured here: ~2x the bandwidth of interleaving 4 rows). Each row
// of w feeds up to 4 rows of x. Prefill (larger M) is a packed GEMM: a block of NR rows of w
// (the output columns) x 256 of K is converted to F32 once, transposed into a [k][NR] panel,
// and an MR x NR register tile (6x16 with AVX2, 12x32 with AVX-512) runs over it for every MR
// rows of x (packed too), broadcasting one x value per row and step. The weights are read from memory once per call whatever M is.
// Threads split N.
#include <algorithm>
#include <atomic>
#include <string>
#include <cstdlib>
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

// All M rows of x against w rows [n0, n1): blocks of w rows small enough to stay in cache are
// reused by every group of 4 rows of x, so the weights stream from memory once.
template <typename WT>
void gemv(const float* x, int64_t M, int64_t K, const WT* w, DType wt, float* out, int64_t N, int64_t n0, int64_t n1) {
  const int64_t rows_in_cache = std::max<int64_t>(4, (32 << 10) / (K * static_cast<int64_t>(sizeof(WT))));
  for (int64_t nb = n0; nb < n1; nb += rows_in_cache) {
    const int64_t ne = std::min(n1, nb + rows_in_cache);
    int64_t m = 0;
    for (; m + 4 <= M; m += 4) gemv_rows<4, WT>(x + m * K, K, w, wt, K, out + m * N, N, nb, ne);
    const float* xr = x + m * K;
    float* o = out + m * N;
    switch (M - m) {
      case 3: gemv_rows<3, WT>(xr, K, w, wt, K, o, N, nb, ne); break;
      case 2: gemv_rows<2, WT>(xr, K, w, wt, K, o, N, nb, ne); break;
      case 1: gemv_rows<1, WT>(xr, K, w, wt, K, o, N, nb, ne); break;
      default: break;
    }
  }
}

// Up to here (batched decode) the dot-product kernel wins: the GEMM's panel packing costs a
// pass of conversion and transposition over all the weights, which only many rows amortize.
constexpr int64_t kGemvMaxRows = 16;
constexpr int64_t kKC = 256;         // K per panel: a 32-column panel (32 KB) stays in L1/L2

// A register-tile kernel: buf[mr][nr] = a[kc][mr] @ panel[kc][nr], both packed.
struct TileKernel {
  int64_t mr, nr;
  void (*run)(const float* a, const float* panel, int64_t kc, float* buf);
  const char* name;
};

// The reference tile, and the only one without AVX2.
void tile_portable_6x16(const float* a, const float* panel, int64_t kc, float* buf) {
  for (int64_t i = 0; i < 6 * 16; ++i) buf[i] = 0.0f;
  for (int64_t k = 0; k < kc; ++k)
    for (int m = 0; m < 6; ++m)
      for (int64_t j = 0; j < 16; ++j) buf[m * 16 + j] += a[k * 6 + m] * panel[k * 16 + j];
}

#if FERRUM_AVX2
// 6 rows x 16 columns: twelve named accumulators (with an array, GCC 12 spills them to the
// stack on every step).
void tile_avx2_6x16(const float* a, const float* panel, int64_t kc, float* buf) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(panel + k * 16), b1 = _mm256_loadu_ps(panel + k * 16 + 8);
    const float* ak = a + k * 6;
#define FERRUM_ROW(i)                                  \
  {                                                    \
    const __m256 av = _mm256_broadcast_ss(ak + i);     \
    c##i##0 = _mm256_fmadd_ps(av, b0, c##i##0);        \
    c##i##1 = _mm256_fmadd_ps(av, b1, c##i##1);        \
  }
    FERRUM_ROW(0) FERRUM_ROW(1) FERRUM_ROW(2) FERRUM_ROW(3) FERRUM_ROW(4) FERRUM_ROW(5)
#undef FERRUM_ROW
  }
#define FERRUM_STORE(i) _mm256_storeu_ps(buf + i * 16, c##i##0), _mm256_storeu_ps(buf + i * 16 + 8, c##i##1);
  FERRUM_STORE(0) FERRUM_STORE(1) FERRUM_STORE(2) FERRUM_STORE(3) FERRUM_STORE(4) FERRUM_STORE(5)
#undef FERRUM_STORE
}

// 12 rows x 32 columns in 512-bit registers (24 accumulators of 32): twice the work per
// broadcast and half the instructions of the AVX2 tile, for AVX-512 machines.
__attribute__((target("avx512f"))) void tile_avx512_12x32(const float* a, const float* panel, int64_t kc,
                                                          float* buf) {
  __m512 z = _mm512_setzero_ps();
  __m512 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
  __m512 c60 = z, c61 = z, c70 = z, c71 = z, c80 = z, c81 = z, c90 = z, c91 = z, cA0 = z, cA1 = z, cB0 = z, cB1 = z;
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(panel + k * 32), b1 = _mm512_loadu_ps(panel + k * 32 + 16);
    const float* ak = a + k * 12;
#define FERRUM_ROW(i, r)                              \
  {                                                   \
    const __m512 av = _mm512_set1_ps(ak[r]);          \
    c##i##0 = _mm512_fmadd_ps(av, b0, c##i##0);       \
    c##i##1 = _mm512_fmadd_ps(av, b1, c##i##1);       \
  }
    FERRUM_ROW(0, 0) FERRUM_ROW(1, 1) FERRUM_ROW(2, 2) FERRUM_ROW(3, 3) FERRUM_ROW(4, 4) FERRUM_ROW(5, 5)
    FERRUM_ROW(6, 6) FERRUM_ROW(7, 7) FERRUM_ROW(8, 8) FERRUM_ROW(9, 9) FERRUM_ROW(A, 10) FERRUM_ROW(B, 11)
#undef FERRUM_ROW
  }
#define FERRUM_STORE(i, r) _mm512_storeu_ps(buf + r * 32, c##i##0), _mm512_storeu_ps(buf + r * 32 + 16, c##i##1);
  FERRUM_STORE(0, 0) FERRUM_STORE(1, 1) FERRUM_STORE(2, 2) FERRUM_STORE(3, 3) FERRUM_STORE(4, 4) FERRUM_STORE(5, 5)
  FERRUM_STORE(6, 6) FERRUM_STORE(7, 7) FERRUM_STORE(8, 8) FERRUM_STORE(9, 9) FERRUM_STORE(A, 10) FERRUM_STORE(B, 11)
#undef FERRUM_STORE
}
#endif

const TileKernel kPortable{6, 16, tile_portable_6x16, "portable"};
#if FERRUM_AVX2
const TileKernel kAvx2{6, 16, tile_avx2_6x16, "avx2"};
const TileKernel kAvx512{12, 32, tile_avx512_12x32, "avx512"};
#endif

// FERRUM_GEMM=avx2|avx512|portable chooses; otherwise AVX-512 on processors that run 512-bit
// FMAs at full width, AVX2 on AMD Zen 4 (512-bit ops are double-pumped there: measured on this
// project's EPYC machines, the AVX2 tile was ~10% faster), AVX2 elsewhere.
const TileKernel* best_tile_kernel() {
#if FERRUM_AVX2
  const char* env = std::getenv("FERRUM_GEMM");
  const std::string want = env ? env : "";
  const bool has512 = __builtin_cpu_supports("avx512f");
  if (want == "portable") return &kPortable;
  if (want == "avx2") return &kAvx2;
  if (want == "avx512" && has512) return &kAvx512;
  if (has512 && !__builtin_cpu_is("amd")) return &kAvx512;
  return &kAvx2;
#else
  return &kPortable;
#endif
}

std::atomic<const TileKernel*> g_tile_kernel{best_tile_kernel()};

const TileKernel& tile_kernel() { return *g_tile_kernel.load(std::memory_order_relaxed); }

// Packs w rows [n0, n0 + nr) x K range [k0, k0 + kc) into panel[k][NR] as F32 (zero-padded
// columns past nr).
void pack_panel(const Tensor& w, int64_t n0, int64_t nr, int64_t NR, int64_t k0, int64_t kc, float* panel) {
  const int64_t K = w.dim(1);
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(kc));
  for (int64_t j = 0; j < NR; ++j) {
    if (j < nr) {
      const char* src = static_cast<const char*>(w.data) + ((n0 + j) * K + k0) * static_cast<int64_t>(dtype_size(w.dtype));
      convert_row(src, w.dtype, kc, row.data());
      for (int64_t k = 0; k < kc; ++k) panel[k * NR + j] = row[k];
    } else {
      for (int64_t k = 0; k < kc; ++k) panel[k * NR + j] = 0.0f;
    }
  }
}

// Packs x rows [0, M) x K range [k0, k0 + kc) into tiles of MR rows: a[t][k][MR], rows past M
// zero. Packing keeps the tile's loads contiguous (rows of x are K floats apart, often 4 KB:
// unpacked they all fall into one cache set).
void pack_rows(const float* x, int64_t M, int64_t K, int64_t MR, int64_t k0, int64_t kc, float* a) {
  for (int64_t t = 0; t * MR < M; ++t) {
    float* dst = a + t * kc * MR;
    for (int64_t m = 0; m < MR; ++m) {
      const int64_t row = t * MR + m;
      if (row < M) {
        const float* src = x + row * K + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + m] = src[k];
      } else {
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + m] = 0.0f;
      }
    }
  }
}

// Columns [n0, n1) of out for all M rows.
void gemm_columns(const float* x, int64_t M, int64_t K, const Tensor& w, float* out, int64_t N, int64_t n0, int64_t n1) {
  const TileKernel& kern = tile_kernel();
  const int64_t MR = kern.mr, NR = kern.nr;
  thread_local std::vector<float> panel, a, buf;
  panel.resize(static_cast<size_t>(kKC * NR));
  buf.resize(static_cast<size_t>(MR * NR));
  const int64_t tiles = (M + MR - 1) / MR;
  a.resize(static_cast<size_t>(tiles * MR * kKC));
  for (int64_t k0 = 0; k0 < K; k0 += kKC) {
    const int64_t kc = std::min(kKC, K - k0);
    const bool accumulate = k0 > 0;
    pack_rows(x, M, K, MR, k0, kc, a.data());
    for (int64_t nb = n0; nb < n1; nb += NR) {
      const int64_t nr = std::min(NR, n1 - nb);
      pack_panel(w, nb, nr, NR, k0, kc, panel.data());
      for (int64_t t = 0; t < tiles; ++t) {
        kern.run(a.data() + t * kc * MR, panel.data(), kc, buf.data());
        const int64_t mr = std::min(MR, M - t * MR);
        float* o = out + t * MR * N + nb;
        for (int64_t m = 0; m < mr; ++m)
          for (int64_t j = 0; j < nr; ++j)
            o[m * N + j] = accumulate ? o[m * N + j] + buf[m * NR + j] : buf[m * NR + j];
      }
    }
  }
}

}  // namespace

bool set_gemm_kernel(const std::string& name) {
  if (name == "best") return g_tile_kernel = best_tile_kernel(), true;
  if (name == "portable") return g_tile_kernel = &kPortable, true;
#if FERRUM_AVX2
  if (name == "avx2") return g_tile_kernel = &kAvx2, true;
  if (name == "avx512" && __builtin_cpu_supports("avx512f")) return g_tile_kernel = &kAvx512, true;
#endif
  return false;
}

void matmul(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  FERRUM_CHECK(out.rows() == x.rows() && out.cols() == w.dim(0), "matmul: out {} should be [{}, {}]", out.shape_str(),
               x.rows(), w.dim(0));
  matmul(pool, x, w, bias, out.ptr<float>(), out.cols());
}

void matmul(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* op, int64_t ldo) {
  matmul(pool, x, w, bias, op, ldo, bf16_gemm_enabled());
}

void matmul(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* op, int64_t ldo,
            bool bf16_gemm) {
  const int64_t M = x.rows(), K = x.cols(), N = w.dim(0);
  FERRUM_CHECK(w.ndim == 2 && w.dim(1) == K, "matmul: x {} and w {} do not match", x.shape_str(), w.shape_str());
  FERRUM_CHECK(x.dtype == DType::F32, "matmul: the CPU takes F32 activations, not {}", dtype_name(x.dtype));
  FERRUM_CHECK(ldo >= N, "matmul: output row stride {} under {} columns", ldo, N);
  FERRUM_CHECK(w.dtype == DType::F32 || w.dtype == DType::F16 || w.dtype == DType::BF16,
               "matmul: weights of dtype {} are not supported", dtype_name(w.dtype));
  const float* xp = x.ptr<float>();
  const DType wt = w.dtype;
  // The kernels below take the output's row stride where they say N.
  if (M <= kGemvMaxRows) {
    pool.parallel_for(N, 16, [&](int64_t nb, int64_t ne) {
      if (wt == DType::F32) gemv<float>(xp, M, K, w.ptr<float>(), wt, op, ldo, nb, ne);
      else gemv<uint16_t>(xp, M, K, w.ptr<uint16_t>(), wt, op, ldo, nb, ne);
    });
  } else if (bf16_gemm) {
    const size_t es = dtype_size(wt);
    const RowFetch fetch = [&](int64_t n, int64_t k0, int64_t kc, float* dst) {
      convert_row(static_cast<const char*>(w.data) + (n * K + k0) * static_cast<int64_t>(es), wt, kc, dst);
    };
    return gemm_bf16(pool, xp, M, K, N, fetch, bias, op, ldo, wt == DType::BF16 ? w.ptr<uint16_t>() : nullptr);
  } else {
    pool.parallel_for(N, tile_kernel().nr, [&](int64_t nb, int64_t ne) { gemm_columns(xp, M, K, w, op, ldo, nb, ne); });
  }
  add_bias(bias, M, N, op, ldo);
}

}  // namespace ferrum::cpu
