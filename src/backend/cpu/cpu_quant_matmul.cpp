// out[m, n] = x[m, :] . W[n, :] for GGUF block weights, as llama.cpp computes it: each row of x
// is quantized once per call to int8 (per 32 values for Q8_0 / Q4_0, per 256 for the K-quants,
// with sums per 16 for their mins), and each block's dot product is an integer dot product
// (AVX2: maddubs of unsigned by signed bytes) scaled by the blocks' scales. A weight row is
// loaded once for up to 4 rows of x; weights stream once per call for all rows.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/simd.h"
#include "core/error.h"

namespace ferrum::cpu {
namespace {

// Above this many rows of x, the BF16 GEMM (when enabled): it dequantizes every weight once per
// call, which only many rows amortize (the row kernel unpacks blocks in registers instead).
constexpr int64_t kBlockGemmMinRows = 24;

inline float half_to_float(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
#if FERRUM_AVX2
  return _cvtsh_ss(h);  // F16C, part of x86-64-v3
#else
  return f16_to_f32(h);
#endif
}


// x quantized to int8 in groups of `group` values with a float scale each (max |x| / 127),
// and the sums of each 16 quantized values.
struct QuantizedRows {
  int64_t group = 0;
  std::vector<int8_t> q;     // [rows, k]
  std::vector<float> d;      // [rows, k / group]
  std::vector<int16_t> s16;  // [rows, k / 16] (K-quants only)
};

// Rows in parallel from 8 on (prefill without the BF16 GEMM); decode's few rows stay on the
// calling thread, which saves the pool a round trip.
void quantize_rows(ThreadPool& pool, const Tensor& x, int64_t group, bool sums, QuantizedRows& out) {
  const int64_t rows = x.rows(), k = x.cols(), ng = k / group;
  out.group = group;
  out.q.resize(static_cast<size_t>(rows * k));
  out.d.resize(static_cast<size_t>(rows * ng));
  out.s16.resize(sums ? static_cast<size_t>(rows * k / 16) : 0);
  auto quantize = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t g = 0; g < ng; ++g) {
        const float* v = x.ptr<float>() + r * k + g * group;
        int8_t* q = out.q.data() + r * k + g * group;
        float amax = 0.0f;
        for (int64_t j = 0; j < group; ++j) amax = std::max(amax, std::fabs(v[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        out.d[r * ng + g] = d;
        for (int64_t j = 0; j < group; ++j) q[j] = static_cast<int8_t>(std::roundf(v[j] * id));
        if (!sums) continue;
        for (int64_t j = 0; j < group; j += 16) {
          int s = 0;
          for (int i = 0; i < 16; ++i) s += q[j + i];
          out.s16[(r * k + g * group + j) / 16] = static_cast<int16_t>(s);
        }
      }
  };
  if (rows >= 8) pool.parallel_for(rows, 1, quantize);
  else quantize(0, rows);
}

// ---- blocks of 32 (Q8_0, Q4_0): value = d * q, q signed ------------------------------------

// A weight block's 32 values as int8 (Q8_0: as stored; Q4_0: nibbles minus 8, low nibbles
// first) and its size in bytes.
struct Q8Block {
  static constexpr int64_t kValues = 32, kBytes = 34;  // f16 scale + 32 int8
#if FERRUM_AVX2
  static __m256i values(const uint8_t* w) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2)); }
#endif
  static int value(const uint8_t* w, int j) { return static_cast<int8_t>(w[2 + j]); }
};
struct Q4Block {
  static constexpr int64_t kValues = 32, kBytes = 18;  // f16 scale + 16 bytes of two 4-bit values
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

// out[r] = sum over blocks of d_w * d_x[r] * (q_w . q_x[r]) for one weight row and R rows of x
// (R <= 4), each weight block loaded once for all of them (AVX2 / AVX-VNNI: cpu_int8_dot.inc).
#if FERRUM_AVX2
template <typename B, int R>
void dot_rows_avx2_or_vnni(const uint8_t* w, const QuantizedRows& x, int64_t m, int64_t k, float* out);
#endif

template <typename B, int R>
void dot_rows(const uint8_t* w, const QuantizedRows& x, int64_t m, int64_t k, float* out) {
#if FERRUM_AVX2
  dot_rows_avx2_or_vnni<B, R>(w, x, m, k, out);
#else
  const int64_t nb = k / 32;
  const int8_t* qx = x.q.data() + m * k;
  const float* dx = x.d.data() + m * nb;
  for (int r = 0; r < R; ++r) out[r] = 0.0f;
  for (int64_t b = 0; b < nb; ++b, w += B::kBytes) {
    const float dw = half_to_float(w);
    for (int r = 0; r < R; ++r) {
      int32_t dot = 0;
      for (int j = 0; j < 32; ++j) dot += B::value(w, j) * qx[r * k + b * 32 + j];
      out[r] += dw * dx[r * nb + b] * static_cast<float>(dot);
    }
  }
#endif
}

// ---- K-quant super-blocks of 256: value = d * scale_g * q - dmin * min_g, q unsigned, -------
// ---- g the group of 16 values ---------------------------------------------------------------

struct SuperScales {
  float d, dmin;
  int16_t scale[16], min[16];
};

#if FERRUM_AVX2
// A super-block's scales for the AVX2 kernel: `table` holds, as int16, the scale of the first
// 16 values of chunk c (of 32) at index c of its low 128 bits and that of the second 16 at
// index c of its high 128 bits; `mins` the 16 per-16 min multipliers in order; value =
// d * scale * q - dmin * min.
struct KScales {
  __m256i table, mins;
  float d, dmin;
};
// Chunk c's two scales broadcast over their 16 int16 lanes each (pshufb picks int16 c).
inline __m256i chunk_scales(__m256i table, int c) {
  const __m128i pick = _mm_set1_epi16(static_cast<int16_t>((2 * c) | ((2 * c + 1) << 8)));
  return _mm256_shuffle_epi8(table, _mm256_set_m128i(pick, pick));
}
#endif

// Q4_K: f16 d, f16 dmin, 12 bytes of eight 6-bit (scale, min) pairs (one per 32 values), 128
// bytes of nibbles: bytes 32c..32c+31 hold values 64c.. (low nibbles) and 64c+32.. (high).
struct Q4K {
  static constexpr int64_t kBytes = 144;
  static constexpr int kQs = 16;
  static void scales(const uint8_t* b, SuperScales& s) {
    s.d = half_to_float(b);
    s.dmin = half_to_float(b + 2);
    const uint8_t* p = b + 4;
    for (int j = 0; j < 8; ++j) {
      const int sc = j < 4 ? p[j] & 63 : (p[j + 4] & 0xF) | ((p[j - 4] >> 6) << 4);
      const int m = j < 4 ? p[j + 4] & 63 : (p[j + 4] >> 4) | ((p[j] >> 6) << 4);
      s.scale[2 * j] = s.scale[2 * j + 1] = static_cast<int16_t>(sc);
      s.min[2 * j] = s.min[2 * j + 1] = static_cast<int16_t>(m);
    }
  }
  static int nibble(const uint8_t* qs, int i) {
    const uint8_t v = qs[32 * (i / 64) + i % 32];
    return i % 64 < 32 ? v & 0xF : v >> 4;
  }
  static int quant(const uint8_t* b, int i) { return nibble(b + kQs, i); }
  static float value(const SuperScales& s, int g, int q) { return s.d * s.scale[g] * q - s.dmin * s.min[g]; }
#if FERRUM_AVX2
  // The eight 6-bit scales and mins as bytes, unpacked with 32-bit masks.
  static void scale_bytes(const uint8_t* b, uint64_t& scales, uint64_t& mins) {
    uint32_t u[3];
    std::memcpy(u, b + 4, 12);
    const uint32_t sc_lo = u[0] & 0x3f3f3f3f, mn_lo = u[1] & 0x3f3f3f3f;
    const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
    const uint32_t mn_hi = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
    scales = sc_lo | (static_cast<uint64_t>(sc_hi) << 32);
    mins = mn_lo | (static_cast<uint64_t>(mn_hi) << 32);
  }
  // See KScales.
  static KScales scales_avx2(const uint8_t* b) {
    uint64_t sc, mn;
    scale_bytes(b, sc, mn);
    const __m128i s = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<int64_t>(sc)));
    const __m128i pairs = _mm_shuffle_epi8(_mm_cvtsi64_si128(static_cast<int64_t>(mn)),
                                           _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7));
    return {_mm256_set_m128i(s, s), _mm256_cvtepu8_epi16(pairs), half_to_float(b), half_to_float(b + 2)};
  }
  static __m256i nibbles(const uint8_t* qs, int chunk) {  // values 32 chunk .. 32 chunk + 31
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * (chunk / 2)));
    const __m256i lo = _mm256_set1_epi8(0x0F);
    return chunk % 2 ? _mm256_and_si256(_mm256_srli_epi16(v, 4), lo) : _mm256_and_si256(v, lo);
  }
  static __m256i quants(const uint8_t* b, int chunk) { return nibbles(b + kQs, chunk); }
#endif
};

// Q5_K: Q4_K's header, then 32 bytes of fifth bits (bit c of byte l: value 32c + l), then the
// nibbles.
struct Q5K {
  static constexpr int64_t kBytes = 176;
  static void scales(const uint8_t* b, SuperScales& s) { Q4K::scales(b, s); }
#if FERRUM_AVX2
  static KScales scales_avx2(const uint8_t* b) { return Q4K::scales_avx2(b); }
#endif
  static int quant(const uint8_t* b, int i) { return Q4K::nibble(b + 48, i) | (((b[16 + i % 32] >> (i / 32)) & 1) << 4); }
  static float value(const SuperScales& s, int g, int q) { return Q4K::value(s, g, q); }
#if FERRUM_AVX2
  static __m256i quants(const uint8_t* b, int chunk) {
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
    const __m256i bit = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(chunk)), _mm256_set1_epi8(1));
    return _mm256_or_si256(Q4K::nibbles(b + 48, chunk), _mm256_slli_epi16(bit, 4));
  }
#endif
};

// Q6_K: 128 bytes of low nibbles, 64 of high 2-bit pairs, 16 int8 scales, f16 d. Value i of
// half h (128 values), quarter k (32), lane l: low 4 bits in ql[64h + 32(k & 1) + l] (high
// nibble for k >= 2), high 2 bits at bit 2k of qh[32h + l]; q - 32 signed.
struct Q6K {
  static constexpr int64_t kBytes = 210;
  static void scales(const uint8_t* b, SuperScales& s) {
    s.d = s.dmin = half_to_float(b + 208);
    for (int g = 0; g < 16; ++g) {
      const int sc = static_cast<int8_t>(b[192 + g]);
      s.scale[g] = static_cast<int16_t>(sc);
      s.min[g] = static_cast<int16_t>(32 * sc);  // d * sc * (q - 32) = d * sc * q - d * 32 sc
    }
  }
  static float value(const SuperScales& s, int g, int q) { return s.d * s.scale[g] * (q - 32); }
  static int quant(const uint8_t* b, int i) {
    const int h = i / 128, k = (i % 128) / 32, l = i % 32;
    const uint8_t lo = b[64 * h + 32 * (k & 1) + l];
    return ((k >> 1) ? lo >> 4 : lo & 0xF) | (((b[128 + 32 * h + l] >> (2 * k)) & 3) << 4);
  }
#if FERRUM_AVX2
  static KScales scales_avx2(const uint8_t* b) {
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 192));
    const __m128i even_odd = _mm_shuffle_epi8(sc, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
    const float d = half_to_float(b + 208);
    return {_mm256_cvtepi8_epi16(even_odd), _mm256_cvtepi8_epi16(sc), d, 32.0f * d};
  }
  static __m256i quants(const uint8_t* b, int chunk) {
    const int h = chunk / 4, k = chunk % 4;
    const __m256i ql = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 64 * h + 32 * (k & 1)));
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 128 + 32 * h));
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i lo = (k >> 1) ? _mm256_and_si256(_mm256_srli_epi16(ql, 4), low) : _mm256_and_si256(ql, low);
    const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k)), _mm256_set1_epi8(3));
    return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
  }
#endif
};

#if FERRUM_AVX2
#define FERRUM_KDOT_NAME dot_rows_k_avx2
#define FERRUM_BDOT_NAME dot_rows_avx2
#define FERRUM_KDOT_STEP(acc, pairs, scales) _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, scales))
#define FERRUM_BDOT_SUM(u8, s8) _mm256_madd_epi16(_mm256_maddubs_epi16(u8, s8), _mm256_set1_epi16(1))
#include "backend/cpu/cpu_int8_dot.inc"
#undef FERRUM_KDOT_NAME
#undef FERRUM_BDOT_NAME
#undef FERRUM_KDOT_STEP
#undef FERRUM_BDOT_SUM
#pragma GCC push_options
#pragma GCC target("avxvnni")
#define FERRUM_KDOT_NAME dot_rows_k_vnni
#define FERRUM_BDOT_NAME dot_rows_vnni
#define FERRUM_KDOT_STEP(acc, pairs, scales) _mm256_dpwssd_avx_epi32(acc, pairs, scales)
#define FERRUM_BDOT_SUM(u8, s8) _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u8, s8)
#include "backend/cpu/cpu_int8_dot.inc"
#undef FERRUM_KDOT_NAME
#undef FERRUM_BDOT_NAME
#undef FERRUM_KDOT_STEP
#undef FERRUM_BDOT_SUM
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"  // see the .inc
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "backend/cpu/cpu_kquant_avx512.inc"
#pragma GCC diagnostic pop
#pragma GCC pop_options

// The row-dot kernels this processor has, the best chosen at start (set_block_dot_kernel picks
// another for tests): AVX-VNNI (vpdpwssd / vpdpbusd: the multiply and the adds in one
// instruction) over plain AVX2, and AVX-512 for Q4_K and Q6_K over both.
enum class DotKernel : int { Avx2, Vnni, Avx512 };
bool has_dot_kernel(DotKernel k) {
  switch (k) {
    case DotKernel::Avx2: return true;
    case DotKernel::Vnni: return __builtin_cpu_supports("avxvnni");
    case DotKernel::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  }
  return false;
}
DotKernel best_dot_kernel() {
  for (DotKernel k : {DotKernel::Avx512, DotKernel::Vnni})
    if (has_dot_kernel(k)) return k;
  return DotKernel::Avx2;
}
std::atomic<DotKernel> dot_kernel{best_dot_kernel()};
// AVX-512's fallback for the other formats: AVX-VNNI where present (not on every AVX-512
// processor: Ice Lake servers have AVX512-VNNI only).
const bool kHasVnni = has_dot_kernel(DotKernel::Vnni);

template <typename B, int R>
void dot_rows_avx2_or_vnni(const uint8_t* w, const QuantizedRows& x, int64_t m, int64_t k, float* out) {
  if (dot_kernel.load(std::memory_order_relaxed) != DotKernel::Avx2 && kHasVnni) dot_rows_vnni<B, R>(w, x, m, k, out);
  else dot_rows_avx2<B, R>(w, x, m, k, out);
}
#endif

// out[r] = sum over super-blocks of d_x[r] * (d * sum_g scale_g (q_g . x_g) - dmin * sum_g
// min_g sum(x_g)), the inner sums in integers.
template <typename B, int R>
void dot_rows_k(const uint8_t* w, const QuantizedRows& x, int64_t m, int64_t k, float* out) {
#if FERRUM_AVX2
  const DotKernel kernel = dot_kernel.load(std::memory_order_relaxed);
  if constexpr (std::is_same_v<B, Q4K> || std::is_same_v<B, Q6K>)
    if (kernel == DotKernel::Avx512) return dot_rows_k_avx512<B, R>(w, x, m, k, out);
  if (kernel != DotKernel::Avx2 && kHasVnni) dot_rows_k_vnni<B, R>(w, x, m, k, out);
  else dot_rows_k_avx2<B, R>(w, x, m, k, out);
#else
  const int64_t ns = k / 256;
  const int8_t* qx = x.q.data() + m * k;
  const float* dx = x.d.data() + m * ns;
  const int16_t* sx = x.s16.data() + m * (k / 16);
  SuperScales s;
  for (int r = 0; r < R; ++r) out[r] = 0.0f;
  for (int64_t sb = 0; sb < ns; ++sb, w += B::kBytes) {
    B::scales(w, s);
    for (int r = 0; r < R; ++r) {
      int32_t dot = 0, msum = 0;
      for (int g = 0; g < 16; ++g) {
        int32_t gd = 0;
        for (int i = 16 * g; i < 16 * g + 16; ++i) gd += B::quant(w, i) * qx[r * k + sb * 256 + i];
        dot += s.scale[g] * gd;
        msum += s.min[g] * sx[r * (k / 16) + sb * 16 + g];
      }
      const float d = dx[r * ns + sb];
      out[r] += s.d * d * static_cast<float>(dot) - s.dmin * d * static_cast<float>(msum);
    }
  }
#endif
}

// Row r of a block table, dequantized into y[0, n).
template <typename B>
void dequantize_blocks32(const uint8_t* w, int64_t n, float* y) {
  for (int64_t b = 0; b < n / 32; ++b, w += B::kBytes, y += 32) {
    const float d = half_to_float(w);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(B::value(w, j)) * d;
  }
}
template <typename B>
void dequantize_super(const uint8_t* w, int64_t n, float* y) {
  SuperScales s;
  for (int64_t b = 0; b < n / 256; ++b, w += B::kBytes, y += 256) {
    B::scales(w, s);
    for (int i = 0; i < 256; ++i) y[i] = B::value(s, i / 16, B::quant(w, i));
  }
}
// The same, vectorized for the GEMM's panels: value = (d scale) q - (dmin min) per 16 (for
// Q6_K that rounds differently from d scale (q - 32) in the last bit; the panel rounds to
// bf16 anyway).
template <typename B>
void dequantize_super_panel(const uint8_t* w, int64_t n, float* y) {
#if FERRUM_AVX2
  SuperScales s;
  alignas(32) uint8_t q[32];
  for (int64_t b = 0; b < n / 256; ++b, w += B::kBytes) {
    B::scales(w, s);
    for (int c = 0; c < 8; ++c, y += 32) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(q), B::quants(w, c));
      for (int h = 0; h < 2; ++h) {
        const int g = 2 * c + h;
        const __m256 dl = _mm256_set1_ps(s.d * s.scale[g]), ml = _mm256_set1_ps(s.dmin * s.min[g]);
        for (int i = 0; i < 16; i += 8) {
          const __m256 qf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + 16 * h + i))));
          _mm256_storeu_ps(y + 16 * h + i, _mm256_fmsub_ps(dl, qf, ml));
        }
      }
    }
  }
#else
  dequantize_super<B>(w, n, y);
#endif
}

// ---- the driver ----------------------------------------------------------------------------

template <typename B>
struct Blocks32 {
  static constexpr int64_t kValues = 32, kBytes = B::kBytes, kTile = 4;
  static constexpr bool kSums = false;
  static void dequantize(const uint8_t* w, int64_t n, float* y) { dequantize_blocks32<B>(w, n, y); }
  template <int R>
  static void dot(const uint8_t* w, const QuantizedRows& x, int64_t m, int64_t k, float* out) {
    dot_rows<B, R>(w, x, m, k, out);
  }
};
template <typename B>
struct SuperBlocks {
  // 8 rows of x per pass: the integer sums stay in registers, the float ones spill cheaply
  // (once per super-block), and batched decode unpacks each block half as often.
  static constexpr int64_t kValues = 256, kBytes = B::kBytes, kTile = 8;
  static constexpr bool kSums = true;
  static void dequantize(const uint8_t* w, int64_t n, float* y) { dequantize_super_panel<B>(w, n, y); }
  template <int R>
  static void dot(const uint8_t* w, const QuantizedRows& x, int64_t m, int64_t k, float* out) {
    dot_rows_k<B, R>(w, x, m, k, out);
  }
};

// dots[0, r) for rows [m, m + r) of x against one weight row (r <= F::kTile).
template <typename F>
void dot_tile(const uint8_t* row, const QuantizedRows& qx, int64_t m, int64_t r, int64_t K, float* dots) {
  if constexpr (F::kTile == 8) {
    if (r == 8) return F::template dot<8>(row, qx, m, K, dots);
    if (r > 4) {
      F::template dot<4>(row, qx, m, K, dots);
      return dot_tile<F>(row, qx, m + 4, r - 4, K, dots + 4);
    }
  }
  if (r == 4) F::template dot<4>(row, qx, m, K, dots);
  else if (r == 3) F::template dot<3>(row, qx, m, K, dots);
  else if (r == 2) F::template dot<2>(row, qx, m, K, dots);
  else F::template dot<1>(row, qx, m, K, dots);
}

// Weight rows [n0, n1) of one block matmul against the M quantized rows of x, into out (rows
// of ldo floats), plus the bias.
template <typename F>
void block_rows(const uint8_t* wp, int64_t nb, const QuantizedRows& qx, int64_t M, int64_t K, const Tensor* bias,
                float* out, int64_t ldo, int64_t n0, int64_t n1) {
  float dots[F::kTile];
  for (int64_t n = n0; n < n1; ++n) {
    const float b = bias ? to_f32(bias->data, bias->dtype, n) : 0.0f;
    const uint8_t* row = wp + n * nb * F::kBytes;
    for (int64_t m = 0; m < M; m += F::kTile) {
      const int64_t r = std::min<int64_t>(F::kTile, M - m);
      dot_tile<F>(row, qx, m, r, K, dots);
      for (int64_t i = 0; i < r; ++i) out[(m + i) * ldo + n] = dots[i] + b;
    }
  }
}

template <typename F>
void check_blocks(const Tensor& x, const Tensor& w, const char* what) {
  const int64_t K = x.cols(), nb = K / F::kValues;
  FERRUM_CHECK(x.dtype == DType::F32 && K % F::kValues == 0 && w.dtype == DType::U8 && w.dim(1) == nb * F::kBytes,
               "{}: x {} ({}), w {} ({})", what, x.shape_str(), dtype_name(x.dtype), w.shape_str(), dtype_name(w.dtype));
}

template <typename F>
void matmul_blocks(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo,
                   const char* what) {
  check_blocks<F>(x, w, what);
  const int64_t M = x.rows(), K = x.cols(), N = w.dim(0), nb = K / F::kValues;
  const auto* wp = static_cast<const uint8_t*>(w.data);
  if (M > kBlockGemmMinRows && bf16_gemm_enabled()) {  // prefill: weight panels dequantized into the BF16 GEMM
    const RowFetch fetch = [&](int64_t n, int64_t k0, int64_t kc, float* dst) {
      F::dequantize(wp + n * nb * F::kBytes + k0 / F::kValues * F::kBytes, kc, dst);
    };
    return gemm_bf16(pool, x.ptr<float>(), M, K, N, fetch, bias, out, ldo);
  }
  thread_local QuantizedRows mine;  // reused from call to call on this thread
  QuantizedRows& qx = mine;         // the workers read this thread's copy, not their own
  quantize_rows(pool, x, F::kValues, F::kSums, qx);
  pool.parallel_for(N, 16, [&](int64_t begin, int64_t end) {
    block_rows<F>(wp, nb, qx, M, K, bias, out, ldo, begin, end);
  });
}

// A format's row loop and the checks and quantization it needs, for matmul_block_parts.
struct PartKernel {
  int64_t values;
  bool sums;
  void (*check)(const Tensor& x, const Tensor& w, const char* what);
  void (*rows)(const uint8_t* wp, int64_t nb, const QuantizedRows& qx, int64_t M, int64_t K, const Tensor* bias,
               float* out, int64_t ldo, int64_t n0, int64_t n1);
  void (*whole)(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo,
                const char* what);
};
template <typename F>
constexpr PartKernel part_kernel() {
  return {F::kValues, F::kSums, check_blocks<F>, block_rows<F>, matmul_blocks<F>};
}
const PartKernel* kernel_of(WeightFormat f) {
  static constexpr PartKernel q8_0 = part_kernel<Blocks32<Q8Block>>(), q4_0 = part_kernel<Blocks32<Q4Block>>(),
                              q4_k = part_kernel<SuperBlocks<Q4K>>(), q5_k = part_kernel<SuperBlocks<Q5K>>(),
                              q6_k = part_kernel<SuperBlocks<Q6K>>();
  switch (f) {
    case WeightFormat::GgufQ8_0: return &q8_0;
    case WeightFormat::GgufQ4_0: return &q4_0;
    case WeightFormat::GgufQ4K: return &q4_k;
    case WeightFormat::GgufQ5K: return &q5_k;
    case WeightFormat::GgufQ6K: return &q6_k;
    default: return nullptr;
  }
}

}  // namespace

bool is_block_format(WeightFormat f) { return kernel_of(f) != nullptr; }

void matmul_block_parts(ThreadPool& pool, const std::vector<BlockPart>& all) {
  // Parts with many rows of x (prefill) each as their own matmul, which takes the BF16 GEMM.
  std::vector<const BlockPart*> parts;
  std::vector<const PartKernel*> kernels;
  for (const BlockPart& p : all) {
    const PartKernel* k = kernel_of(p.format);
    FERRUM_CHECK(k, "matmul_block_parts: {} is not a GGUF block format", weight_format_name(p.format));
    k->check(*p.x, *p.w, weight_format_name(p.format));
    if (p.x->rows() > kBlockGemmMinRows && bf16_gemm_enabled()) {
      k->whole(pool, *p.x, *p.w, p.bias, p.out, p.ldo, weight_format_name(p.format));
      continue;
    }
    parts.push_back(&p);
    kernels.push_back(k);
  }
  if (parts.empty()) return;
  // Each distinct (x, grouping) quantized once, into buffers that persist on this thread.
  thread_local std::vector<QuantizedRows> quantized;
  std::vector<std::pair<const float*, int64_t>> keys;
  std::vector<size_t> which(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::pair<const float*, int64_t> key{parts[i]->x->ptr<float>(), kernels[i]->values};
    const size_t q = std::find(keys.begin(), keys.end(), key) - keys.begin();
    if (q == keys.size()) {
      keys.push_back(key);
      if (quantized.size() < keys.size()) quantized.resize(keys.size());
      quantize_rows(pool, *parts[i]->x, kernels[i]->values, kernels[i]->sums, quantized[q]);
    }
    which[i] = q;
  }
  // All parts' weight rows as one range, cut over the threads together.
  std::vector<int64_t> first_row(parts.size() + 1, 0);
  for (size_t i = 0; i < parts.size(); ++i) first_row[i + 1] = first_row[i] + parts[i]->w->dim(0);
  const std::vector<QuantizedRows>& qs = quantized;  // the workers read this thread's buffers
  pool.parallel_for(first_row.back(), 16, [&](int64_t begin, int64_t end) {
    size_t i = std::upper_bound(first_row.begin(), first_row.end(), begin) - first_row.begin() - 1;
    for (; begin < end; ++i) {
      const int64_t stop = std::min(end, first_row[i + 1]);
      const BlockPart& p = *parts[i];
      const int64_t K = p.x->cols();
      kernels[i]->rows(static_cast<const uint8_t*>(p.w->data), K / kernels[i]->values, qs[which[i]], p.x->rows(), K,
                       p.bias, p.out, p.ldo, begin - first_row[i], stop - first_row[i]);
      begin = stop;
    }
  });
}

void embedding_blocks(const Tensor& blocks, WeightFormat format, const Tensor& ids, Tensor& out) {
  const int64_t T = ids.numel(), D = out.cols(), V = blocks.dim(0);
  const int64_t values = gguf_block_values(format);
  FERRUM_CHECK(values && D % values == 0 && blocks.dtype == DType::U8 &&
                   blocks.dim(1) == D / values * gguf_block_bytes(format) && out.dtype == DType::F32 && out.rows() == T,
               "embedding_blocks: {} table {} for rows of {}, out {}", weight_format_name(format), blocks.shape_str(), D,
               out.shape_str());
  const int32_t* id = ids.ptr<int32_t>();
  for (int64_t t = 0; t < T; ++t)
    FERRUM_CHECK(id[t] >= 0 && id[t] < V, "token id {} is outside the vocabulary (size {})", id[t], V);
  for (int64_t t = 0; t < T; ++t) {
    const uint8_t* row = static_cast<const uint8_t*>(blocks.data) + id[t] * blocks.dim(1);
    float* y = out.ptr<float>() + t * D;
    switch (format) {
      case WeightFormat::GgufQ8_0: dequantize_blocks32<Q8Block>(row, D, y); break;
      case WeightFormat::GgufQ4_0: dequantize_blocks32<Q4Block>(row, D, y); break;
      case WeightFormat::GgufQ4K: dequantize_super<Q4K>(row, D, y); break;
      case WeightFormat::GgufQ5K: dequantize_super<Q5K>(row, D, y); break;
      case WeightFormat::GgufQ6K: dequantize_super<Q6K>(row, D, y); break;
      default: fail("embedding_blocks: {} tables are not supported", weight_format_name(format));
    }
  }
}

bool set_block_dot_kernel(const std::string& name) {
#if FERRUM_AVX2
  DotKernel k;
  if (name == "best") k = best_dot_kernel();
  else if (name == "avx2") k = DotKernel::Avx2;
  else if (name == "vnni") k = DotKernel::Vnni;
  else if (name == "avx512") k = DotKernel::Avx512;
  else return false;
  if (!has_dot_kernel(k)) return false;
  dot_kernel.store(k);
  return true;
#else
  return name == "best" || name == "portable";
#endif
}

void matmul_q8_0(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo) {
  matmul_blocks<Blocks32<Q8Block>>(pool, x, w, bias, out, ldo, "matmul_q8_0");
}
void matmul_q4_0(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo) {
  matmul_blocks<Blocks32<Q4Block>>(pool, x, w, bias, out, ldo, "matmul_q4_0");
}
void matmul_q4_k(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo) {
  matmul_blocks<SuperBlocks<Q4K>>(pool, x, w, bias, out, ldo, "matmul_q4_k");
}
void matmul_q5_k(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo) {
  matmul_blocks<SuperBlocks<Q5K>>(pool, x, w, bias, out, ldo, "matmul_q5_k");
}
void matmul_q6_k(ThreadPool& pool, const Tensor& x, const Tensor& w, const Tensor* bias, float* out, int64_t ldo) {
  matmul_blocks<SuperBlocks<Q6K>>(pool, x, w, bias, out, ldo, "matmul_q6_k");
}

}  // namespace ferrum::cpu
