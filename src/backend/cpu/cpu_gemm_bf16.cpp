// Prefill GEMM with BF16 products: x rounded to bf16, w's rows (any dtype, or GGUF blocks)
// converted to bf16 as they are packed, and AVX512-BF16's vdpbf16ps accumulating pairs of
// products into F32. Twice the products per instruction of the F32 tile, for half the
// precision of the inputs (about 3 significant digits; the sums stay F32).
//
// Layout: a panel holds NR = 32 rows of w (output columns) x KC = 256 of K as pairs of k,
// panel[p][j] = (bf16 w[j][2p], bf16 w[j][2p + 1]); x is packed in tiles of MR = 12 rows,
// a[t][p][m] the same pairs. The 12 x 32 register tile broadcasts one pair of x per row and
// step against two 16-column vectors of the panel.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"
#include "core/error.h"

namespace ferrum::cpu {
namespace {

constexpr int64_t kMR = 12, kNR = 32, kKC = 256;

inline uint32_t bf16_pair(float lo, float hi) {
  return static_cast<uint32_t>(f32_to_bf16(lo)) | (static_cast<uint32_t>(f32_to_bf16(hi)) << 16);
}

#if FERRUM_AVX2
// c[r][0, 32) (rows ldc apart) = (accumulate ? c : 0) + the tile's sums.
__attribute__((target("avx512f,avx512bf16"))) void tile_bf16_12x32(const uint32_t* a, const uint32_t* panel,
                                                                   int64_t pairs, float* c, int64_t ldc, bool accumulate) {
  __m512 z = _mm512_setzero_ps();
  __m512 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
  __m512 c60 = z, c61 = z, c70 = z, c71 = z, c80 = z, c81 = z, c90 = z, c91 = z, cA0 = z, cA1 = z, cB0 = z, cB1 = z;
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + p * kNR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + p * kNR + 16);
    const uint32_t* ap = a + p * kMR;
#define FERRUM_ROW(i, r)                                                   \
  {                                                                        \
    const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[r])); \
    c##i##0 = _mm512_dpbf16_ps(c##i##0, av, b0);                           \
    c##i##1 = _mm512_dpbf16_ps(c##i##1, av, b1);                           \
  }
    FERRUM_ROW(0, 0) FERRUM_ROW(1, 1) FERRUM_ROW(2, 2) FERRUM_ROW(3, 3) FERRUM_ROW(4, 4) FERRUM_ROW(5, 5)
    FERRUM_ROW(6, 6) FERRUM_ROW(7, 7) FERRUM_ROW(8, 8) FERRUM_ROW(9, 9) FERRUM_ROW(A, 10) FERRUM_ROW(B, 11)
#undef FERRUM_ROW
  }
  if (accumulate) {
#define FERRUM_ADD(i, r)                                                       \
  c##i##0 = _mm512_add_ps(c##i##0, _mm512_loadu_ps(c + r * ldc)),              \
  c##i##1 = _mm512_add_ps(c##i##1, _mm512_loadu_ps(c + r * ldc + 16));
    FERRUM_ADD(0, 0) FERRUM_ADD(1, 1) FERRUM_ADD(2, 2) FERRUM_ADD(3, 3) FERRUM_ADD(4, 4) FERRUM_ADD(5, 5)
    FERRUM_ADD(6, 6) FERRUM_ADD(7, 7) FERRUM_ADD(8, 8) FERRUM_ADD(9, 9) FERRUM_ADD(A, 10) FERRUM_ADD(B, 11)
#undef FERRUM_ADD
  }
#define FERRUM_STORE(i, r) _mm512_storeu_ps(c + r * ldc, c##i##0), _mm512_storeu_ps(c + r * ldc + 16, c##i##1);
  FERRUM_STORE(0, 0) FERRUM_STORE(1, 1) FERRUM_STORE(2, 2) FERRUM_STORE(3, 3) FERRUM_STORE(4, 4) FERRUM_STORE(5, 5)
  FERRUM_STORE(6, 6) FERRUM_STORE(7, 7) FERRUM_STORE(8, 8) FERRUM_STORE(9, 9) FERRUM_STORE(A, 10) FERRUM_STORE(B, 11)
#undef FERRUM_STORE
}

// pairs[p] = (bf16 row[2p], bf16 row[2p + 1]) for p < n / 2 (n a multiple of 32), rounded to
// nearest even as f32_to_bf16.
__attribute__((target("avx512f,avx512bf16"))) void bf16_pairs_avx512(const float* row, int64_t n, uint32_t* pairs) {
  for (int64_t i = 0; i < n; i += 32) {
    const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + i + 16), _mm512_loadu_ps(row + i));
    _mm512_storeu_si512(pairs + i / 2, (__m512i)v);
  }
}
#endif

// The same products in portable code (bf16 inputs, F32 sums, pairs added first as the
// instruction does), for processors without AVX512-BF16 when the BF16 path is forced (tests).
void tile_bf16_portable(const uint32_t* a, const uint32_t* panel, int64_t pairs, float* c, int64_t ldc, bool accumulate) {
  auto lo = [](uint32_t v) { return bf16_to_f32(static_cast<uint16_t>(v & 0xFFFF)); };
  auto hi = [](uint32_t v) { return bf16_to_f32(static_cast<uint16_t>(v >> 16)); };
  float buf[kMR * kNR] = {};
  for (int64_t p = 0; p < pairs; ++p)
    for (int64_t m = 0; m < kMR; ++m) {
      const uint32_t x = a[p * kMR + m];
      for (int64_t j = 0; j < kNR; ++j) {
        const uint32_t w = panel[p * kNR + j];
        buf[m * kNR + j] += lo(x) * lo(w) + hi(x) * hi(w);
      }
    }
  for (int64_t m = 0; m < kMR; ++m)
    for (int64_t j = 0; j < kNR; ++j) c[m * ldc + j] = (accumulate ? c[m * ldc + j] : 0.0f) + buf[m * kNR + j];
}

bool cpu_has_bf16() {
#if FERRUM_AVX2
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

// FERRUM_CPU_GEMM=f32 keeps the exact F32 prefill (the golden tests run so); bf16 forces this
// one, portable where the instruction is missing.
int initial_mode() {
  const char* env = std::getenv("FERRUM_CPU_GEMM");
  const std::string v = env ? env : "";
  if (v == "f32") return 0;
  if (v == "bf16") return 1;
  return cpu_has_bf16() ? 1 : 0;
}
int g_mode = initial_mode();  // 0: F32, 1: BF16

}  // namespace

bool bf16_gemm_enabled() { return g_mode == 1; }
void set_bf16_gemm(bool on) { g_mode = on ? 1 : 0; }

void pack_bf16_rows(const float* x, int64_t M, int64_t K, Bf16Rows& out) {
  out.M = M;
  out.K = K;
  out.tiles = (M + kMR - 1) / kMR;
  const int64_t blocks = (K + kKC - 1) / kKC;
  out.a.assign(static_cast<size_t>(blocks * out.tiles * kMR * kKC / 2), 0);
  const bool fast = cpu_has_bf16();
  std::vector<uint32_t> converted(static_cast<size_t>(kKC / 2));
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t k0 = b * kKC, kc = std::min(kKC, K - k0), pairs = (kc + 1) / 2;
    uint32_t* base = out.a.data() + b * out.tiles * kMR * (kKC / 2);
    for (int64_t r = 0; r < M; ++r) {
      uint32_t* dst = base + (r / kMR) * pairs * kMR + r % kMR;
      const float* src = x + r * K + k0;
#if FERRUM_AVX2
      if (fast && kc % 32 == 0) {
        bf16_pairs_avx512(src, kc, converted.data());
        for (int64_t p = 0; p < pairs; ++p) dst[p * kMR] = converted[p];
        continue;
      }
#endif
      for (int64_t p = 0; p < pairs; ++p) dst[p * kMR] = bf16_pair(src[2 * p], 2 * p + 1 < kc ? src[2 * p + 1] : 0.0f);
    }
  }
}

void gemm_bf16_columns(const Bf16Rows& xa, const RowFetch& fetch, float* out, int64_t ldo, int64_t n0, int64_t n1,
                       const uint16_t* w_bf16) {
#if FERRUM_AVX2
  auto* const tile = cpu_has_bf16() ? tile_bf16_12x32 : tile_bf16_portable;
#else
  auto* const tile = tile_bf16_portable;
#endif
  const bool fast = cpu_has_bf16();
  const int64_t M = xa.M, K = xa.K, tiles = xa.tiles;
  thread_local std::vector<uint32_t> panel, converted;
  converted.resize(static_cast<size_t>(kKC / 2));
  thread_local std::vector<float> row, buf;
  panel.resize(static_cast<size_t>(kKC / 2 * kNR));
  row.resize(static_cast<size_t>(kKC + 1));
  buf.resize(static_cast<size_t>(kMR * kNR));
  for (int64_t k0 = 0; k0 < K; k0 += kKC) {
    const int64_t kc = std::min(kKC, K - k0), pairs = (kc + 1) / 2;
    const uint32_t* a = xa.a.data() + (k0 / kKC) * tiles * kMR * (kKC / 2);
    for (int64_t nb = n0; nb < n1; nb += kNR) {
      const int64_t nr = std::min(kNR, n1 - nb);
      for (int64_t j = 0; j < kNR; ++j) {
        if (w_bf16 && j < nr && kc % 2 == 0) {  // BF16 weights: their pairs as they are
          const uint16_t* src = w_bf16 + (nb + j) * K + k0;
          for (int64_t p = 0; p < pairs; ++p) {
            uint32_t v;
            std::memcpy(&v, src + 2 * p, 4);
            panel[p * kNR + j] = v;
          }
          continue;
        }
        if (j < nr) fetch(nb + j, k0, kc, row.data());
        else std::fill(row.begin(), row.begin() + kc, 0.0f);
        row[kc] = 0.0f;
#if FERRUM_AVX2
        if (fast && kc % 32 == 0) {
          bf16_pairs_avx512(row.data(), kc, converted.data());
          for (int64_t p = 0; p < pairs; ++p) panel[p * kNR + j] = converted[p];
          continue;
        }
#endif
        for (int64_t p = 0; p < pairs; ++p) panel[p * kNR + j] = bf16_pair(row[2 * p], row[2 * p + 1]);
      }
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t mr = std::min(kMR, M - t * kMR);
        float* o = out + t * kMR * ldo + nb;
        if (mr == kMR && nr == kNR) {  // a whole tile: straight into the output
          tile(a + t * pairs * kMR, panel.data(), pairs, o, ldo, k0 > 0);
          continue;
        }
        tile(a + t * pairs * kMR, panel.data(), pairs, buf.data(), kNR, false);
        for (int64_t m = 0; m < mr; ++m)
          for (int64_t j = 0; j < nr; ++j) o[m * ldo + j] = (k0 > 0 ? o[m * ldo + j] : 0.0f) + buf[m * kNR + j];
      }
    }
  }
}

void gemm_bf16(ThreadPool& pool, const float* x, int64_t M, int64_t K, int64_t N, const RowFetch& fetch,
               const Tensor* bias, float* out, int64_t ldo, const uint16_t* w_bf16) {
  thread_local Bf16Rows mine;  // reused from call to call on this thread
  Bf16Rows& xa = mine;         // the workers read this thread's copy, not their own
  pack_bf16_rows(x, M, K, xa);
  pool.parallel_for(N, kNR, [&](int64_t n0, int64_t n1) { gemm_bf16_columns(xa, fetch, out, ldo, n0, n1, w_bf16); });
  add_bias(bias, M, N, out, ldo);
}

void add_bias(const Tensor* bias, int64_t M, int64_t N, float* out, int64_t ldo) {
  if (!bias) return;
  for (int64_t n = 0; n < N; ++n) {
    const float b = to_f32(bias->data, bias->dtype, n);
    for (int64_t m = 0; m < M; ++m) out[m * ldo + n] += b;
  }
}

}  // namespace ferrum::cpu
