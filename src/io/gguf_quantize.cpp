// The reference quantizers of llama.cpp's GGUF types, written from the block layouts and the
// published rounding rules (ggml-quants.c, the scalar "_ref" functions, no importance matrix):
// a file quantized here has the same bytes as llama-quantize writes from the same F32 values.
// Bit-exactness needs the same float operations in the same order, so this file is compiled
// with -ffp-contract=off (as ggml's C is), and each expression keeps the reference's order.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "io/gguf_quant.h"

namespace ferrum {
namespace {

// Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves the integer in the
// low mantissa bits (the reference's nearest_int).
int nearest_int(float v) {
  const float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

float h2f(uint16_t h) { return f16_to_f32(h); }

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {  // d = max|x| / 127, q = round(x / d)
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    for (int j = 0; j < 32; ++j) y[i].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  }
}

// The value of largest magnitude (sign kept) of 32 values.
float signed_absmax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 32; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  return max;
}

// Q4_0 / Q5_0: the value of largest magnitude maps to the most negative level; q = min(top,
// (int8)(x / d + offset + 0.5)). bits 4: d = max / -8; bits 5: d = max / -16, fifth bits in qh.
template <typename Block, int kBits>
void quantize_symmetric(const float* x, Block* y, int64_t nb) {
  constexpr int kHalf = 1 << (kBits - 1), kTop = (1 << kBits) - 1;
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = signed_absmax(x) / static_cast<float>(-kHalf);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(kTop, static_cast<int>(static_cast<int8_t>(x[j] * id + (kHalf + 0.5f))));
      const int q1 = std::min(kTop, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + (kHalf + 0.5f))));
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    if constexpr (kBits == 5) std::memcpy(y[i].qh, &qh, 4);
  }
}

// Q4_1 / Q5_1: d = (max - min) / top, m = min, q = (x - min) / d + 0.5 truncated (Q4_1 capped
// at 15).
template <typename Block, int kBits>
void quantize_affine(const float* x, Block* y, int64_t nb) {
  constexpr int kTop = (1 << kBits) - 1;
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min = x[0], max = x[0];
    for (int j = 1; j < 32; ++j) {
      min = std::min(min, x[j]);
      max = std::max(max, x[j]);
    }
    const float d = (max - min) / static_cast<float>(kTop);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f32_to_f16(d);
    y[i].m = f32_to_f16(min);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      int q0, q1;
      if constexpr (kBits == 4) {
        q0 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f)));
        q1 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j + 16] - min) * id + 0.5f)));
      } else {
        q0 = static_cast<uint8_t>((x[j] - min) * id + 0.5f);
        q1 = static_cast<uint8_t>((x[j + 16] - min) * id + 0.5f);
      }
      y[i].qs[j] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    if constexpr (kBits == 5) std::memcpy(y[i].qh, &qh, 4);
  }
}

// Fits x ~ scale * L + min (min <= 0, L in [0, nmax]) to n values, minimizing the weighted
// squared error: a first guess from the range, then nstep + 1 candidate scales
// (rmin + rdelta * is + nmax) / range, each refit by weighted least squares. Returns the scale
// and sets *neg_min = -min (the reference's make_qkx2_quants, squared error).
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, float rmin,
                    float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, 0);
    *neg_min = -min;
    return 0.0f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax));
    float diff = scale * L[i] + min - x[i];
    diff = diff * diff;
    best_error += w[i] * diff;
  }
  uint8_t trial[32];
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
      trial[i] = static_cast<uint8_t>(l);
      sum_l += w[i] * static_cast<float>(l);
      sum_l2 += w[i] * static_cast<float>(l) * static_cast<float>(l);
      sum_xl += w[i] * static_cast<float>(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * trial[i] + this_min - x[i];
        diff = diff * diff;
        error += w[i] * diff;
      }
      if (error < best_error) {
        std::copy(trial, trial + n, L);
        best_error = error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *neg_min = -min;
  return scale;
}

// Q4_K / Q5_K (kBits 4 / 5): 8 sub-blocks of 32, each fit with its own scale and min (weights
// mean |x| + |x|), the scales and mins quantized to 6 bits against the largest of each, then
// every value requantized with the rounded scales.
template <int kBits>
void quantize_k_scale_min(const float* x, uint8_t* scales_out, uint16_t& d_out, uint16_t& dmin_out, uint8_t* L) {
  constexpr int kTop = (1 << kBits) - 1;
  float scales[8], mins[8], weights[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = kBits == 4 ? fit_scale_min(32, kTop, x + 32 * j, weights, L + 32 * j, &mins[j], -1.0f, 0.1f, 20)
                           : fit_scale_min(32, kTop, x + 32 * j, weights, L + 32 * j, &mins[j], -0.5f, 0.1f, 15);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  std::memset(scales_out, 0, 12);
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
    if (j < 4) {  // low 6 bits of bytes 0-3 (scales) and 4-7 (mins)
      scales_out[j] = ls;
      scales_out[j + 4] = lm;
    } else {  // low nibbles in bytes 8-11, top 2 bits in bytes 0-7's top bits
      scales_out[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      scales_out[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      scales_out[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  d_out = f32_to_f16(max_scale / 63.0f);
  dmin_out = f32_to_f16(max_min / 63.0f);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    ggml_scale_min_k4(j, scales_out, sc, m);
    const float d = h2f(d_out) * sc;
    if (!d) continue;
    const float dm = h2f(dmin_out) * m;
    for (int i = 0; i < 32; ++i)
      L[32 * j + i] = static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + i] + dm) / d), 0, kTop));
  }
}

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
  uint8_t L[256];
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    quantize_k_scale_min<4>(x, y[i].scales, y[i].d, y[i].dmin, L);
    for (int j = 0; j < 4; ++j)  // 64 values per 32 bytes: low nibbles first
      for (int l = 0; l < 32; ++l) y[i].qs[32 * j + l] = static_cast<uint8_t>(L[64 * j + l] | (L[64 * j + l + 32] << 4));
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb) {
  uint8_t L[256];
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    quantize_k_scale_min<5>(x, y[i].scales, y[i].d, y[i].dmin, L);
    std::memset(y[i].qh, 0, 32);
    for (int j = 0; j < 4; ++j)  // sub-block s's fifth bits: bit s of qh[l]
      for (int l = 0; l < 32; ++l) {
        const int l1 = L[64 * j + l], l2 = L[64 * j + l + 32];
        y[i].qh[l] |= static_cast<uint8_t>(((l1 >> 4) << (2 * j)) | ((l2 >> 4) << (2 * j + 1)));
        y[i].qs[32 * j + l] = static_cast<uint8_t>((l1 & 0xF) | ((l2 & 0xF) << 4));
      }
  }
}

// Symmetric fit of n values to L in [0, 2 nmax) (x ~ scale * (L - nmax)), weights x^2: the
// scale through the largest magnitude, then 18 nearby scales, each refit by least squares
// (the reference's make_qx_quants, rmse_type 1, no importance).
float fit_scale_symmetric(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  if (amax < 1e-15f) {
    std::fill(L, L + n, 0);
    return 0.0f;
  }
  auto sums = [&](float iscale, float& sumlx, float& suml2, bool store) {
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      if (store) L[i] = static_cast<int8_t>(l + nmax);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * static_cast<float>(l);
      suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
  };
  float sumlx, suml2;
  sums(static_cast<float>(-nmax) / max, sumlx, suml2, true);
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sums(iscale, sumlx, suml2, false);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      sums(iscale, sumlx, suml2, true);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q6_K: 16 sub-blocks of 16 fit symmetrically, their scales quantized to int8 against the
// largest, values requantized to 6 bits (4 in ql, 2 in qh).
void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
  int8_t L[256];
  float scales[16];
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
      scales[ib] = fit_scale_symmetric(16, 32, x + 16 * ib, L + 16 * ib);
      if (std::fabs(scales[ib]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[ib]);
        max_scale = scales[ib];
      }
    }
    if (max_abs_scale < 1e-15f) {
      std::memset(&y[i], 0, sizeof(BlockQ6_K));
      continue;
    }
    const float iscale = -128.0f / max_scale;
    y[i].d = f32_to_f16(1 / iscale);
    for (int ib = 0; ib < 16; ++ib) y[i].scales[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
    for (int j = 0; j < 16; ++j) {
      const float d = h2f(y[i].d) * y[i].scales[j];
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii)
        L[16 * j + ii] = static_cast<int8_t>(std::clamp(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
    }
    for (int h = 0; h < 2; ++h) {  // each half of 128: ql 64 bytes, qh 32 bytes
      uint8_t* ql = y[i].ql + 64 * h;
      uint8_t* qh = y[i].qh + 32 * h;
      const int8_t* q = L + 128 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((q[l] & 0xF) | ((q[l + 64] & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((q[l + 32] & 0xF) | ((q[l + 96] & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((q[l] >> 4) | ((q[l + 32] >> 4) << 2) | ((q[l + 64] >> 4) << 4) |
                                     ((q[l + 96] >> 4) << 6));
      }
    }
  }
}

}  // namespace

bool can_quantize(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q8_0: case GgmlType::Q4_0:
    case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q4_K: case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return true;
    default: return false;
  }
}

void quantize_row(GgmlType t, const float* x, void* dst, int64_t n) {
  const auto info = ggml_type_info(static_cast<uint32_t>(t));
  FERRUM_CHECK(info && n % info->block_elems == 0, "quantize_row: {} values of {}", n, ggml_type_name(t));
  const int64_t nb = n / info->block_elems;
  switch (t) {
    case GgmlType::F32: std::memcpy(dst, x, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(x[i]);
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(x[i]);
      return;
    case GgmlType::Q8_0: return quantize_q8_0(x, static_cast<BlockQ8_0*>(dst), nb);
    case GgmlType::Q4_0: return quantize_symmetric<BlockQ4_0, 4>(x, static_cast<BlockQ4_0*>(dst), nb);
    case GgmlType::Q5_0: return quantize_symmetric<BlockQ5_0, 5>(x, static_cast<BlockQ5_0*>(dst), nb);
    case GgmlType::Q4_1: return quantize_affine<BlockQ4_1, 4>(x, static_cast<BlockQ4_1*>(dst), nb);
    case GgmlType::Q5_1: return quantize_affine<BlockQ5_1, 5>(x, static_cast<BlockQ5_1*>(dst), nb);
    case GgmlType::Q4_K: return quantize_q4_k(x, static_cast<BlockQ4_K*>(dst), nb);
    case GgmlType::Q5_K: return quantize_q5_k(x, static_cast<BlockQ5_K*>(dst), nb);
    case GgmlType::Q6_K: return quantize_q6_k(x, static_cast<BlockQ6_K*>(dst), nb);
    default: break;
  }
  fail("quantizing to {} is not implemented", ggml_type_name(t));
}

}  // namespace ferrum
